// The parsed form of a template: expression and statement trees produced by parser.cpp
// (from lexer tokens) and walked by interpreter.cpp. Immutable once parsed.
// Thread safety: a Program is read-only after parse(); share it freely.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jinja/value.h"

namespace sn::engine::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind : uint8_t {
  kLiteral,    // value
  kName,       // name
  kList,       // items
  kTuple,      // items
  kDict,       // items as key, value pairs
  kGetattr,    // a.name
  kGetitem,    // a[b]
  kSlice,      // a[b:c:d]; absent parts are null
  kCall,       // a(items, kwargs)
  kFilter,     // a | name(items, kwargs); a null means "the block's body" (filter blocks)
  kTest,       // a is [not] name(items); negate
  kNeg,        // -a
  kPos,        // +a
  kNot,        // not a
  kBinary,     // a op b: + - * / // % ** ~ and or
  kCompare,    // a op1 b op2 c...: a, then kwargs = (op, operand); ops == != < <= > >= in notin
  kCond,       // b if a else c (a = condition)
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  int line = 0;
  int height = 1;  // of the tree rooted here; the parser bounds it (kMaxExprHeight)
  Value value;
  std::string name;  // variable, attribute, filter, test or operator
  bool negate = false;
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

enum class NodeKind : uint8_t {
  kText,      // text
  kOutput,    // {{ expr }}
  kIf,        // branches (expr null for else)
  kFor,       // target, expr (iterable), cond (loop filter), body, else_body
  kSet,       // target = expr
  kSetBlock,  // {% set target %}body{% endset %}; expr: optional filter chain
  kMacro,     // name, params (with defaults), body
  kFilterBlock,  // expr: filter chain over a null base; body
  kWith,      // params (name = expr, evaluated in the outer scope); body in a new scope
  kBreak,
  kContinue,
};

struct Node {
  NodeKind kind = NodeKind::kText;
  int line = 0;
  std::string text;
  ExprPtr target, expr, cond;
  Body body, else_body;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<std::pair<std::string, ExprPtr>> params;
};

struct Program {
  Body body;
};

// Expression trees are at most this tall, so that evaluating, checking and destroying
// them (all recursive) cannot exhaust the stack; left-associative chains such as
// `a + b + c ...` or `x | f | g ...` count one level per operator.
constexpr int kMaxExprHeight = 256;

// Tokens of the tag contents (the text between tags is kData).
enum class Tok : uint8_t { kData, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };

struct Token {
  Tok type = Tok::kEof;
  std::string text;  // data, name, decoded string literal, operator
  int64_t i = 0;
  double f = 0;
  int line = 1;
};

// Splits `source` into tokens with jinja2's whitespace rules (trim_blocks, lstrip_blocks,
// `-`/`+` markers, one trailing newline dropped, newlines normalized to \n). Throws
// JinjaError on unterminated tags, strings or comments.
std::vector<Token> lex(std::string_view source);

// Parses the tokens into a Program. Throws JinjaError naming the line.
std::unique_ptr<Program> parse_program(std::vector<Token> tokens);

}  // namespace sn::engine::jinja
