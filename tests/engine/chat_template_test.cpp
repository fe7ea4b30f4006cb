// Chat templates: the Jinja2-subset interpreter against jinja2's own behaviour (group
// ChatTemplate: inline templates whose expected output was produced by Python's jinja2
// 3.1 with transformers' environment; whitespace control, loops, macros, namespaces,
// undefined values, filters, tests, methods, errors, sandbox limits), JsonValue parsing
// (ChatTemplateJson), the `supernode render-template` command (ChatTemplateCli), hostile
// templates that must end quickly with an error instead of running away with time, memory
// or stack (ChatTemplateBudget), and every real template x conversation in ../shared/reference/chat-templates compared byte
// for byte with transformers' renders (ModelChatTemplates; skipped when ../shared is absent).
// Thread safety: run on the test thread only.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "supernode/engine/chat_template.h"
#include "supernode/engine/gguf.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using sn::Result;
using sn::Status;
using sn::engine::ChatTemplate;
using sn::engine::ChatTemplateInputs;
using sn::engine::ChatTemplateLimits;
using sn::engine::JsonValue;

namespace {

std::tm fixed_now() {
  std::tm t{};
  t.tm_year = 2026 - 1900;
  t.tm_mon = 0;
  t.tm_mday = 15;
  t.tm_wday = 4;  // Thursday
  t.tm_yday = 14;
  return t;
}

// Renders `tpl` with the top-level variables in the JSON object `vars`.
Result<std::string> render(const std::string& tpl, const std::string& vars = "{}", ChatTemplateLimits limits = {}) {
  Result<ChatTemplate> t = ChatTemplate::parse(tpl, limits);
  if (!t.ok()) return t.status();
  Result<JsonValue> v = sn::engine::json_parse(vars);
  CHECK_TRUE_TEXT(v.ok(), v.status().to_string().c_str());
  return t->render_with(v->object, fixed_now());
}

std::string render_ok(const std::string& tpl, const std::string& vars = "{}") {
  Result<std::string> r = render(tpl, vars);
  CHECK_TRUE_TEXT(r.ok(), (tpl + " -> " + r.status().to_string()).c_str());
  return r.ok() ? *r : std::string();
}

Status render_err(const std::string& tpl, const std::string& vars = "{}", ChatTemplateLimits limits = {}) {
  Result<std::string> r = render(tpl, vars, limits);
  CHECK_FALSE_TEXT(r.ok(), (tpl + " rendered " + (r.ok() ? *r : std::string())).c_str());
  return r.status();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

enum class Expect { kText, kError, kRaised };

struct PyCase {
  const char* tpl;
  const char* vars;
  const char* expected;  // the text, or the raise_exception message
  Expect expect;
};

// Generated with jinja2 3.1.6 in an ImmutableSandboxedEnvironment(trim_blocks=True,
// lstrip_blocks=True, extensions=[loopcontrols]) with transformers' tojson,
// raise_exception and strftime_now (fixed at 2026-01-15 00:00:00).
const PyCase kPyCases[] = {
    {"a  \n  {% if x %}\n  yes\n  {% endif %}\n  b",
     "{\"x\": true}",
     "a  \n  yes\n  b", Expect::kText},
    {"{%- for i in [1,2,3] -%}\n  {{ i }}\n{%- endfor %}\n",
     "{}",
     "123", Expect::kText},
    {"{% for i in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
     "{}",
     "103TrueFalse3|212FalseFalse3|321FalseTrue3|", Expect::kText},
    {"{% for i in [1,2,3] if i != 2 %}{{ loop.index }}:{{ i }}{{ loop.previtem }}{{ loop.nextitem }} {{ loop.cycle('a','b') }},{% else %}none{% endfor %}",
     "{}",
     "1:13 a,2:31 b,", Expect::kText},
    {"{% for i in [] %}x{% else %}empty{% endfor %}",
     "{}",
     "empty", Expect::kText},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{k}}{% endfor %}",
     "{\"d\": {\"b\": 1, \"a\": 2}}",
     "b=1;a=2;ba", Expect::kText},
    {"{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
     "{}",
     "0134", Expect::kText},
    {"{% set ns = namespace(n=0, s='') %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}{% set x = i %}{% endfor %}{{ ns.n }}[{{ x }}]",
     "{}",
     "6[]", Expect::kText},
    {"{% macro m(a, b='B', c=none) %}<{{ a }}{{ b }}{{ c }}>{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(a=3, c=4) }}",
     "{}",
     "<1BNone><12None><3B4>", Expect::kText},
    {"{% set x %}  block {{ 1 + 2 }} {% endset %}[{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}",
     "{}",
     "[  block 3 ]ABC", Expect::kText},
    {"{% filter upper %}hello {{ 'w' }}{% endfilter %}",
     "{}",
     "HELLO W", Expect::kText},
    {"{% raw %}{{ not parsed }}{% endraw %} {# comment #}x",
     "{}",
     "{{ not parsed }} x", Expect::kText},
    {"{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }}",
     "{}",
     "5.0 3 -4 2 1024 a1None ababab", Expect::kText},
    {"{{ [1, 'a', none, true, 1.5] }} {{ {'a': [1, (2, 3)], 'b': {'c': none}} }} {{ (1,) }} {{ \"it's\" }} {{ ['it\\'s'] }}",
     "{}",
     "[1, 'a', None, True, 1.5] {'a': [1, (2, 3)], 'b': {'c': None}} (1,) it's [\"it's\"]", Expect::kText},
    {"{{ x }}|{{ x is defined }}|{{ x | default('d') }}|{{ x | length }}|{% for i in x %}no{% endfor %}|{{ 'a' in x }}",
     "{}",
     "|False|d|0||False", Expect::kText},
    {"{{ x.y }}",
     "{}",
     "", Expect::kError},
    {"{{ d.missing }}|{{ d.missing is defined }}|{{ d['missing'] | default('z') }}|{{ d.get('missing', 5) }}|{{ d.get('a') }}",
     "{\"d\": {\"a\": 1}}",
     "|False|z|5|1", Expect::kText},
    {"{{ none.x is defined }}",
     "{}",
     "False", Expect::kText},
    {"{{ x() }}",
     "{}",
     "", Expect::kError},
    {"{{ 1 + none }}",
     "{}",
     "", Expect::kError},
    {"{{ 'a' + 1 }}",
     "{}",
     "", Expect::kError},
    {"{{ '  Hello World  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x','c')) }}|{{ 'aXa'.replace('a','b') }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'abc'.upper() }}{{ 'ABC'.lower() }}",
     "{}",
     "Hello World|hi|['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|True|True|bXb|Hello World|Hello|ABCabc", Expect::kText},
    {"{{ 'héllo wörld'[1:4] }}|{{ 'abcdef'[::-1] }}|{{ [1,2,3,4][1:] }}|{{ [1,2,3,4][:-1] }}|{{ [1,2,3,4][::2] }}|{{ 'abc'[-1] }}|{{ [1,2][5] is defined }}",
     "{}",
     "éll|fedcba|[2, 3, 4]|[1, 2, 3]|[1, 3]|c|False", Expect::kText},
    {"{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ 'é<>&\\'\"\\n' | tojson }}|{{ [] | tojson(indent=4) }}|{{ {} | tojson }}",
     "{\"x\": {\"a\": [1, 2.5, \"s\", null, true], \"b\": {}}}",
     "{\"a\": [1, 2.5, \"s\", null, true], \"b\": {}}|{\n  \"a\": [\n    1,\n    2.5,\n    \"s\",\n    null,\n    true\n  ],\n  \"b\": {}\n}|\"é<>&'\\\"\\n\"|[]|{}", Expect::kText},
    {"{{ [3,1,2] | sort }}|{{ ['b','A','c'] | sort }}|{{ [3,1,2] | sort(reverse=true) }}|{{ d | dictsort }}|{{ [1,2,1] | unique | list }}|{{ [1,2,3] | first }}{{ [1,2,3] | last }}|{{ [1,2] | join(', ') }}|{{ ['a','b'] | map('upper') | join }}",
     "{\"d\": {\"b\": 1, \"A\": 2, \"c\": 3}}",
     "[1, 2, 3]|['A', 'b', 'c']|[3, 2, 1]|[('A', 2), ('b', 1), ('c', 3)]|[1, 2]|13|1, 2|AB", Expect::kText},
    {"{{ users | selectattr('role', 'equalto', 'user') | list | length }}|{{ users | map(attribute='name') | join(',') }}|{{ users | rejectattr('role', 'equalto', 'user') | map(attribute='name') | list }}|{{ [1,2,3,4] | select('odd') | list }}|{{ ['a','b'] | reject('equalto','a') | list }}|{{ users | sort(attribute='name') | map(attribute='name') | list }}",
     "{\"users\": [{\"role\": \"user\", \"name\": \"z\"}, {\"role\": \"sys\", \"name\": \"a\"}]}",
     "1|z,a|['a']|[1, 3]|['b']|['a', 'z']", Expect::kText},
    {"{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ '  x ' | trim }}|{{ 3.7 | int }}|{{ '42' | int }}|{{ 'x' | int }}|{{ 2 | float }}|{{ -3 | abs }}|{{ 2.567 | round(2) }}|{{ 'abc' | reverse }}|{{ 5 | string }}|{{ 'hello world' | title }}|{{ 'hello' | capitalize }}",
     "{}",
     "a\n  b\n\n  c|  a\n  b|x|3|42|0|2.0|3|2.57|cba|5|Hello World|Hello", Expect::kText},
    {"{{ x is string }}{{ x is mapping }}{{ x is iterable }}{{ x is sequence }}{{ x is none }}{{ x is number }}{{ x is integer }}{{ x is float }}{{ x is boolean }}{{ x is false }}{{ x is true }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 1 is in [1,2] }}{{ 'a' is lower }}{{ x is not none }}",
     "{\"x\": \"s\"}",
     "TrueFalseTrueTrueFalseFalseFalseFalseFalseFalseFalseTrueTrueTrueTrueTrueTrue", Expect::kText},
    {"{{ 1 if x else 2 }}|{{ 1 if not x }}|{{ x and 'y' }}|{{ x or 'z' }}|{{ not x }}|{{ 1 < 2 < 3 }}|{{ 1 == 1.0 }}|{{ 'a' not in 'abc' }}|{{ [1] == [1] }}|{{ true == 1 }}",
     "{\"x\": false}",
     "2|1|False|z|True|True|True|False|True|True", Expect::kText},
    {"{{ raise_exception('boom: ' ~ 1) }}",
     "{}",
     "boom: 1", Expect::kRaised},
    {"{{ strftime_now('%Y-%m-%d %b %B %d, %A') }}",
     "{}",
     "2026-01-15 Jan January 15, Thursday", Expect::kText},
    {"{{ 'x' | nofilter }}",
     "{}",
     "", Expect::kError},
    {"{% if false %}{{ 'x' | nofilter }}{% endif %}ok",
     "{}",
     "ok", Expect::kText},
    {"{{ '%s-%d' % ('a', 3) }} {{ 'x=%s' % 1 }} {{ '{} and {}'.format(1, 'b') }}",
     "{}",
     "a-3 x=1 1 and b", Expect::kText},
    {"  {%- if true %}\n  a\n  {%+ if true %}b{% endif +%}\n  {{- 'c' -}}  \n  d\n{% endif %}",
     "{}",
     "  a\n  bcd\n", Expect::kText},
    {"{# c #}\n  {# c2 #}\nx\n  {{ 'v' }}\n  {% set a = 1 %}  after\n",
     "{}",
     "x\n  v\n  after", Expect::kText},
    {"{{ [1,2,3] | length }}{{ 'héllo' | length }}{{ d | length }}{{ d | list }}{{ d | items | list }}{{ 'ab' | list }}",
     "{\"d\": {\"a\": 1, \"b\": 2}}",
     "352['a', 'b'][('a', 1), ('b', 2)]['a', 'b']", Expect::kText},
    {"{{ l.append(1) }}",
     "{\"l\": [1]}",
     "", Expect::kError},
    {"{{ x.__class__ }}|{{ 'abc'.__class__ }}|{{ d.__class__ is defined }}",
     "{\"x\": 1, \"d\": {}}",
     "||False", Expect::kText},
    {"{{ 1.0 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 1e-7 }} {{ 10 / 4 }} {{ 3 / 1 }} {{ 123456789012345678.0 }} {{ 1.5e16 }}",
     "{}",
     "1.0 1e+20 0.30000000000000004 1e-07 2.5 3.0 1.2345678901234568e+17 1.5e+16", Expect::kText},
    {"{{ '\\u3000 a \\u3000'.strip() }}|{{ ['\\u3000', '\\u200d', 'é', '\\t'] }}",
     "{}",
     "a|['\\u3000', '\\u200d', 'é', '\\t']", Expect::kText},
    {"{% set a, b = [1, 2] %}{{ a }}{{ b }}{% for a, b in [[1,2],[3,4]] %}{{ a + b }}{% endfor %}",
     "{}",
     "1237", Expect::kText},
    {"{% macro outer() %}{% for i in [1,2] %}{{ caller_less(i) }}{% endfor %}{% endmacro %}{% macro caller_less(x) %}[{{ x }}]{% endmacro %}{{ outer() }}",
     "{}",
     "[1][2]", Expect::kText},
    {"{% for m in msgs %}{% if m.role == 'user' %}U:{{ m.content }}{% elif m.role == 'assistant' %}A:{{ m['content'] }}{% else %}\?{% endif %}\n{% endfor %}",
     "{\"msgs\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}, {\"role\": \"x\"}]}",
     "U:hiA:yo\?", Expect::kText},
    {"{{ tools | tojson(ensure_ascii=true) }}|{{ x | tojson(separators=(',', ':')) }}|{{ x | tojson(sort_keys=true) }}",
     "{\"tools\": [\"é😀\"], \"x\": {\"b\": 1, \"a\": [1, 2]}}",
     "[\"\\u00e9\\ud83d\\ude00\"]|{\"b\":1,\"a\":[1,2]}|{\"a\": [1, 2], \"b\": 1}", Expect::kText},
    {"{{ 'a' if x is defined and x.y else 'b' }}",
     "{\"x\": {\"y\": 0}}",
     "b", Expect::kText},
    {"{{ {'a': 1}['a'] }}{{ [[1, 2]][0][1] }}{{ x.0 }}",
     "{\"x\": [5]}",
     "125", Expect::kText},
    {"{{ 1 < 'a' }}",
     "{}",
     "", Expect::kError},
    {"{{ none | upper }}|{{ x | upper }}|{{ x | trim }}|{{ x | string }}|{{ x | join }}|{{ x | list }}",
     "{}",
     "NONE|||||[]", Expect::kText},
    {"  {% if true %}x{% endif %}  \n  {{ 'y' }}  {% if true %}z{% endif %}\n",
     "{}",
     "x  \n  y  z", Expect::kText},
    {"a\r\nb{% if true %}\r\nc{% endif %}\r\n",
     "{}",
     "a\nbc", Expect::kText},
    {"x\n\n",
     "{}",
     "x\n", Expect::kText},
    {"{# a -#}   \n  b {#- c #}  d{#+ e +#}\nf",
     "{}",
     "b  d\nf", Expect::kText},
    {"  {%- raw -%}  {{ x }}  {%- endraw -%}  y",
     "{}",
     "{{ x }}y", Expect::kText},
    {"  {% raw %}\n  {{ x }}\n  {% endraw %}\n  y",
     "{}",
     "\n  {{ x }}\n  y", Expect::kText},
    {"{% for i in [1] %}{% if true %}{% set x = 5 %}{% endif %}{{ x }}{% endfor %}[{{ x }}]",
     "{}",
     "5[]", Expect::kText},
    {"{% if true %}{% set x = 5 %}{% endif %}{{ x }}",
     "{}",
     "5", Expect::kText},
    {"{% set x = 1 %}{% for i in [1,2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}",
     "{}",
     "231", Expect::kText},
    {"{% for a in [1,2] %}{% for b in [3,4] %}{{ loop.index }}{{ a }}{{ b }},{% endfor %}{{ loop.index }};{% endfor %}",
     "{}",
     "113,214,1;123,224,2;", Expect::kText},
    {"{% macro f(n) %}{{ n }}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}",
     "{}",
     "3210", Expect::kText},
    {"{{ 'a' 'b' }}{{ [1, 2,] }}{{ {'a': 1,} }}{{ (1, 2,) }}",
     "{}",
     "ab[1, 2]{'a': 1}(1, 2)", Expect::kText},
    {"{{ x is defined }}{{ x is none }}{{ x }}",
     "{\"x\": null}",
     "TrueTrueNone", Expect::kText},
    {"{%- set sys = messages[0]['content'] if messages[0]['role'] == 'system' else '' -%}[{{ sys }}]",
     "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}]}",
     "[S]", Expect::kText},
    {"{{ messages[1:] | length }}{% for m in messages[1:] %}{{ m.role }}{% endfor %}",
     "{\"messages\": [{\"role\": \"system\"}, {\"role\": \"user\"}]}",
     "1user", Expect::kText},
    {"{%- if a -%}\n    A\n{%- elif b -%}\n    B\n{%- else -%}\n    C\n{%- endif -%}\n",
     "{\"a\": false, \"b\": true}",
     "B", Expect::kText},
    {"{{- 'x' }}\n\n{{- 'y' -}}\n\n{{ 'z' }}",
     "{}",
     "xyz", Expect::kText},
    {"{% set content = '<think>abc</think>\\n\\nanswer' %}{{ content.split('</think>')[-1].lstrip('\\n') }}|{{ content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}",
     "{}",
     "answer|abc", Expect::kText},
    {"{{ (messages | selectattr('role', 'equalto', 'user') | list)[-1].content }}",
     "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]}",
     "b", Expect::kText},
    {"{% for t in tools %}{{ t | tojson(indent=4) }}{% endfor %}",
     "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"a\": [1, {\"b\": null}], \"e\": []}}}]}",
     "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"f\",\n        \"parameters\": {\n            \"a\": [\n                1,\n                {\n                    \"b\": null\n                }\n            ],\n            \"e\": []\n        }\n    }\n}", Expect::kText},
    {"{{ 1 / 0 }}",
     "{}",
     "", Expect::kError},
    {"{% for x in 5 %}{% endfor %}",
     "{}",
     "", Expect::kError},
    {"{{ x | tojson }}",
     "{}",
     "", Expect::kError},
    {"{% set ns = namespace() %}{% set ns.a = 1 %}{{ ns.a }}{{ ns.b }}{{ ns }}",
     "{}",
     "1<Namespace {'a': 1}>", Expect::kText},
    {"{% set d = {} %}{% set d.a = 1 %}",
     "{}",
     "", Expect::kError},
    {"{{ '' ~ 'é' | upper }}{{ 'Straße' | lower }}",
     "{}",
     "Éstraße", Expect::kText},
    {"{% for i in range(3) %}{{ i }}{% endfor %}{{ range(2, 10, 3) | list }}",
     "{}",
     "012[2, 5, 8]", Expect::kText},
    {"{{ x[0] }}",
     "{\"x\": []}",
     "", Expect::kText},
    {"{{ x['a']['b'] }}",
     "{\"x\": {}}",
     "", Expect::kError},
    {"{%- for message in messages %}{{- '<|' + message['role'] + '|>\\n' + message['content'] | trim + '\\n' }}{% endfor %}",
     "{\"messages\": [{\"role\": \"user\", \"content\": \"  hi  \"}]}",
     "<|user|>\nhi\n", Expect::kText},
    {"{{ 'abc' | replace('b', 'X') }}{{ 'aaa' | replace('a', 'b', 2) }}{{ [1,2,3] | max }}{{ [1,2,3] | min }}{{ [1,2,3] | sum }}",
     "{}",
     "aXcbba316", Expect::kText},
    {"{% if x is not defined or x is none %}N{% endif %}{% if not x %}F{% endif %}",
     "{}",
     "NF", Expect::kText},
    {"{{ -1 }}{{ - 2 | abs }}{{ (-2) | abs }}",
     "{}",
     "-122", Expect::kText},
    {"{{ [1,2] + [3] }}{{ (1,) + (2,) }}{{ [1] + (2,) }}",
     "{}",
     "", Expect::kError},
    {"{{ 'é' | upper }}{{ 'Straße' | lower }}{{ 'straße' | upper }}{{ 'ΟΔΟΣ ΣΑΣ' | lower }}{{ 'привет мир' | upper }}{{ 'ПРИВЕТ' | lower }}",
     "{}",
     "ÉstraßeSTRASSEοδος σαςПРИВЕТ МИРпривет", Expect::kText},
    {"{{ 'élan vital' | title }}{{ 'élan-vital' | capitalize }}{{ 'ßa'.title() }}{{ 'hello WORLD'.title() }}{{ \"they're\".title() }}{{ 'ÿ' | upper }}",
     "{}",
     "Élan VitalÉlan-vitalSsaHello WorldThey'ReŸ", Expect::kText},
    {"{{ ['b', 'A', 'É', 'a'] | sort }}",
     "{}",
     "['A', 'a', 'b', 'É']", Expect::kText},
    {"{{ x | items | list }}",
     "{\"x\": {\"b\": 1, \"a\": 2}}",
     "[('b', 1), ('a', 2)]", Expect::kText},
    {"{% set a = 1 %}{% with a = 2, b = a %}{{ a }}{{ b }}{% set c = 3 %}{% endwith %}{{ a }}{{ c }}",
     "{}",
     "211", Expect::kText},
    {"{% for i in [1,2,3] %}{% with x = i * 2 %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endwith %}{% endfor %}",
     "{}",
     "2", Expect::kText},
    {"{{ ns.a }}{% set ns = namespace(a=[1]) %}{{ ns.a }}{{ ns }}",
     "{}",
     "", Expect::kError},
    {"{% for x in 'ab' %}{{ x }}{{ loop }}{% endfor %}",
     "{}",
     "a<LoopContext 1/2>b<LoopContext 2/2>", Expect::kText},
    {"{{ '{\"a\": 1}' | tojson }}{{ 3 | tojson }}{{ 1.0 | tojson }}{{ none | tojson }}",
     "{}",
     "\"{\\\"a\\\": 1}\"31.0null", Expect::kText},
    {"{{ x | tojson }}",
     "{\"x\": 1e+300}",
     "1e+300", Expect::kText},
    {"{{ 'a' < 'b' }}{{ [1,2] < [1,3] }}{{ 2 > 1.5 }}{{ 'b' >= 'b' }}",
     "{}",
     "TrueTrueTrueTrue", Expect::kText},
    {"{{ 5 is divisibleby(2) }}{{ x is sameas none }}{{ true is sameas true }}{{ 'x' is eq 'x' }}{{ 2 is gt 1 }}{{ 2 is lt 1 }}",
     "{\"x\": null}",
     "FalseTrueTrueTrueTrueFalse", Expect::kText},
    {"{{ x[-10:2] }}{{ x[2:-10] }}{{ x[::-1] }}{{ x[-1::-2] }}{{ x[10:] }}{{ x[:10] }}{{ x[1:1] }}{{ x[3:0:-1] }}{{ x[-2:] }}",
     "{\"x\": [1, 2, 3, 4, 5]}",
     "[1, 2][][5, 4, 3, 2, 1][5, 3, 1][][1, 2, 3, 4, 5][][4, 3, 2][4, 5]", Expect::kText},
    {"{{ 'hello'[-3:] }}{{ 'hello'[:-3] }}{{ 'hello'[::2] }}{{ 'hello'[4:0:-2] }}",
     "{}",
     "llohehlool", Expect::kText},
    {"{% for x in [] %}{{ x | nofilter }}{% endfor %}ok",
     "{}",
     "", Expect::kError},
    {"{% if true %}{% for x in [] %}{{ x | nofilter }}{% endfor %}{% endif %}ok",
     "{}",
     "", Expect::kError},
    {"{% if false %}{{ x | nofilter }}{% endif %}ok",
     "{}",
     "ok", Expect::kText},
    {"{{ (x | nofilter) if false else 1 }}ok",
     "{}",
     "1ok", Expect::kText},
    {"{% if false %}{{ x is notatest }}{% endif %}ok{{ 1 is odd }}",
     "{}",
     "okTrue", Expect::kText},
    {"{{ 1 is notatest }}",
     "{}",
     "", Expect::kError},
    {"{% macro m() %}{{ 1 | nofilter }}{% endmacro %}ok",
     "{}",
     "", Expect::kError},
    {"{% if true %}{% macro m() %}{{ 1 | nofilter }}{% endmacro %}{% endif %}ok",
     "{}",
     "", Expect::kError},
    {"{% for x in ([] | nofilter if false else []) %}{% endfor %}ok",
     "{}",
     "ok", Expect::kText},
    {"{% set a = 1 | nofilter if false else 2 %}{{ a }}",
     "{}",
     "2", Expect::kText},
};

}  // namespace

TEST_GROUP(ChatTemplate){};

TEST(ChatTemplate, MatchesJinja2OnInlineTemplates) {
  int n = 0;
  for (const PyCase& c : kPyCases) {
    Result<std::string> r = render(c.tpl, c.vars);
    const std::string what = std::string("template #") + std::to_string(n++) + ": " + c.tpl;
    if (c.expect == Expect::kText) {
      CHECK_TRUE_TEXT(r.ok(), (what + " -> " + r.status().to_string()).c_str());
      if (r.ok()) STRCMP_EQUAL_TEXT(c.expected, r->c_str(), what.c_str());
    } else {
      CHECK_FALSE_TEXT(r.ok(), (what + " should fail, gave " + (r.ok() ? *r : "")).c_str());
      if (!r.ok() && c.expect == Expect::kRaised) {
        STRCMP_EQUAL_TEXT((std::string("chat template: ") + c.expected).c_str(), r.status().message().c_str(), what.c_str());
      }
    }
  }
}

TEST(ChatTemplate, WhitespaceControl) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
  STRCMP_EQUAL("a\nb\n", render_ok("{% if true %}\na\n    {% endif %}\nb\n\n").c_str());
  // A variable tag neither trims nor lstrips.
  STRCMP_EQUAL("  x\ny", render_ok("  {{ 'x' }}\ny").c_str());
  // `-` strips all whitespace, newlines included; `+` keeps it.
  STRCMP_EQUAL("ab", render_ok("a  \n\t {{- 'b' -}}  \n ").c_str());
  STRCMP_EQUAL("  \nx\n", render_ok("  {%+ if true +%}\nx\n{% endif %}").c_str());
  // Only one trailing newline of the source is dropped; CRLF becomes LF.
  STRCMP_EQUAL("x\n", render_ok("x\n\n").c_str());
  STRCMP_EQUAL("a\nb", render_ok("a\r\nb\r\n").c_str());
  // Comments trim like blocks.
  STRCMP_EQUAL("x", render_ok("  {# note #}\nx").c_str());
}

TEST(ChatTemplate, LoopScopingAndNamespaces) {
  // A set inside a loop does not leak out of it; a namespace carries state across.
  STRCMP_EQUAL("3[]", render_ok("{% set ns = namespace(n=0) %}{% for i in [1,2] %}{% set ns.n = ns.n + i %}"
                                "{% set x = i %}{% endfor %}{{ ns.n }}[{{ x }}]").c_str());
  STRCMP_EQUAL("[0]1[0]2<0>", render_ok("{% set x = 0 %}{% for i in [1,2] %}[{{ x }}]{% set x = i %}{{ x }}"
                                         "{% endfor %}<{{ x }}>").c_str());
  // Only namespaces take attribute assignment.
  CHECK(contains(render_err("{% set d = {} %}{% set d.a = 1 %}").message(), "non-namespace"));
}

TEST(ChatTemplate, UndefinedBehavesLikeJinja2Default) {
  STRCMP_EQUAL("|False|d|0||False", render_ok("{{ x }}|{{ x is defined }}|{{ x | default('d') }}|{{ x | length }}|"
                                               "{% for i in x %}no{% endfor %}|{{ 'a' in x }}").c_str());
  // A missing key of a defined dict is undefined, not an error.
  STRCMP_EQUAL("|False", render_ok("{{ d.k }}|{{ d.k is defined }}", R"({"d": {}})").c_str());
  // Attribute of, call of, or arithmetic on an undefined value raises.
  CHECK(contains(render_err("{{ x.y }}").message(), "UndefinedError: 'x' is undefined"));
  CHECK(contains(render_err("{{ x() }}").message(), "UndefinedError"));
  CHECK(contains(render_err("{{ x + 1 }}").message(), "UndefinedError"));
  // None's attributes are undefined; calling one raises (Qwen's `content.split` on null).
  CHECK(contains(render_err("{{ c.split('x') }}", R"({"c": null})").message(), "'None' has no attribute 'split'"));
}

TEST(ChatTemplate, PythonTypeErrors) {
  CHECK(contains(render_err("{{ 'a' + c }}", R"({"c": null})").message(),
                 "TypeError: can only concatenate str (not \"NoneType\") to str"));
  CHECK(contains(render_err("{{ 'x' in c }}", R"({"c": null})").message(), "argument of type 'NoneType' is not iterable"));
  CHECK(contains(render_err("{{ c | length }}", R"({"c": null})").message(), "has no len()"));
  CHECK(contains(render_err("{{ 1 < 'a' }}").message(), "TypeError"));
  CHECK(contains(render_err("{{ 1 // 0 }}").message(), "ZeroDivisionError"));
}

TEST(ChatTemplate, RaiseExceptionMessageIsExact) {
  Status s = render_err("{{ raise_exception('Only user and assistant roles are supported!') }}");
  STRCMP_EQUAL("chat template: Only user and assistant roles are supported!", s.message().c_str());
}

TEST(ChatTemplate, ErrorsNameTheLine) {
  Status s = render_err("line one\n{{ 'a' + 1 }}");
  CHECK_TEXT(contains(s.message(), "(line 2)"), s.message().c_str());
  Status p = render_err("{% if x %}\nno end");
  CHECK_TEXT(contains(p.message(), "TemplateSyntaxError"), p.message().c_str());
  CHECK(contains(render_err("{{ 1 +  }}").message(), "TemplateSyntaxError"));
  CHECK(contains(render_err("{% include 'x' %}").message(), "unsupported tag 'include'"));
  CHECK(contains(render_err("{{ 'unterminated }}").message(), "unterminated string"));
  // Unknown filters fail only when reached, as in jinja2 (DeepSeek V3.2's from_json).
  STRCMP_EQUAL("ok", render_ok("{% if false %}{{ x | from_json }}{% endif %}ok").c_str());
  CHECK(contains(render_err("{{ '{}' | from_json }}").message(), "No filter named 'from_json'"));
  // ... but one outside any `if` fails the template as a whole, even when never reached.
  CHECK_FALSE(ChatTemplate::parse("{% for x in [] %}{{ x | from_json }}{% endfor %}").ok());
  CHECK(contains(render_err("{% if a and b if c %}{% endif %}").message(), "TemplateSyntaxError"));
}

TEST(ChatTemplate, TojsonFollowsTransformers) {
  const char* vars = R"({"x": {"b": "é<>&'\"\n", "a": [1, 2.5, null, true], "e": {}}})";
  STRCMP_EQUAL(R"({"b": "é<>&'\"\n", "a": [1, 2.5, null, true], "e": {}})", render_ok("{{ x | tojson }}", vars).c_str());
  STRCMP_EQUAL("{\n  \"b\": \"é<>&'\\\"\\n\",\n  \"a\": [\n    1,\n    2.5,\n    null,\n    true\n  ],\n  \"e\": {}\n}",
               render_ok("{{ x | tojson(indent=2) }}", vars).c_str());
  STRCMP_EQUAL(R"(["\u00e9\ud83d\ude00"])", render_ok("{{ ['é😀'] | tojson(ensure_ascii=true) }}").c_str());
  STRCMP_EQUAL(R"({"a":1})", render_ok("{{ {'a': 1} | tojson(separators=(',', ':')) }}").c_str());
  CHECK(contains(render_err("{{ x | tojson }}").message(), "not JSON serializable"));
}

TEST(ChatTemplate, PythonStrOfValues) {
  STRCMP_EQUAL("None True [1, 'a', None, False, 1.5] {'k': (1,)} 1e+20 0.30000000000000004 2.5",
               render_ok("{{ none }} {{ true }} {{ [1, 'a', none, false, 1.5] }} {{ {'k': (1,)} }} {{ 1e20 }} "
                         "{{ 0.1 + 0.2 }} {{ 10 / 4 }}").c_str());
  STRCMP_EQUAL("[\"it's\", '\\u3000']", render_ok("{{ [\"it's\", '\u3000'] }}").c_str());
}

TEST(ChatTemplate, StringMethodsUseCodePointsAndUnicodeWhitespace) {
  STRCMP_EQUAL("a", render_ok("{{ '\u3000 a \u3000\n'.strip() }}").c_str());
  STRCMP_EQUAL("éll|5", render_ok("{{ 'héllo'[1:4] }}|{{ 'héllo' | length }}").c_str());
  STRCMP_EQUAL("answer", render_ok("{{ c.split('</think>')[-1].lstrip('\\n') }}", R"({"c": "<think>x</think>\n\nanswer"})").c_str());
}

TEST(ChatTemplate, MacrosWithDefaultsAndRecursion) {
  STRCMP_EQUAL("<1BNone><12None><3B4>", render_ok("{% macro m(a, b='B', c=none) %}<{{ a }}{{ b }}{{ c }}>{% endmacro %}"
                                                  "{{ m(1) }}{{ m(1, 2) }}{{ m(a=3, c=4) }}").c_str());
  STRCMP_EQUAL("3210", render_ok("{% macro f(n) %}{{ n }}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}").c_str());
}

TEST(ChatTemplate, SandboxHidesHostAttributesAndMutation) {
  STRCMP_EQUAL("|False", render_ok("{{ x.__class__ }}|{{ d.__class__ is defined }}", R"({"x": 1, "d": {}})").c_str());
  CHECK(contains(render_err("{{ l.append(2) }}", R"({"l": [1]})").message(), "SecurityError"));
  CHECK(contains(render_err("{{ d.update({'a': 1}) }}", R"({"d": {}})").message(), "SecurityError"));
  CHECK(contains(render_err("{{ range(200000) | length }}").message(), "Range too big"));
}

TEST(ChatTemplate, LimitsStopRunawayTemplates) {
  ChatTemplateLimits small;
  small.max_loop_iterations = 1000;
  Status loops = render_err("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", "{}", small);
  CHECK(loops.code() == Status::Code::kResourceExhausted);
  CHECK_TEXT(contains(loops.message(), "loop iterations"), loops.message().c_str());

  ChatTemplateLimits out;
  out.max_output_bytes = 1000;
  Status big = render_err("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}", "{}", out);
  CHECK(big.code() == Status::Code::kResourceExhausted);

  Status deep = render_err("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}");
  CHECK(deep.code() == Status::Code::kResourceExhausted);
  CHECK_TEXT(contains(deep.message(), "nested deeper"), deep.message().c_str());

  ChatTemplateLimits src;
  src.max_source_bytes = 10;
  CHECK(ChatTemplate::parse("{{ 'this is long' }}", src).status().code() == Status::Code::kResourceExhausted);

  // Deeply nested expressions are refused by the parser instead of overflowing the stack.
  std::string nested = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  CHECK(contains(render_err(nested).message(), "nested too deeply"));
  std::string blocks;
  for (int k = 0; k < 5000; ++k) blocks += "{% if true %}";
  CHECK(contains(render_err(blocks).message(), "nested too deeply"));
}

TEST(ChatTemplate, RenderPassesTransformersVariables) {
  Result<ChatTemplate> t = ChatTemplate::parse(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}|{{ tools is none }}|{{ documents is none }}"
      "|{{ eos_token is defined }}|{{ enable_thinking }}|{{ strftime_now('%d %b %Y') }}");
  CHECK_TRUE(t.ok());
  ChatTemplateInputs in;
  in.messages = *sn::engine::json_parse(R"([{"role": "user", "content": "Hi"}])");
  in.add_generation_prompt = true;
  in.bos_token = "<s>";
  in.extra_variables.emplace_back("enable_thinking", JsonValue::boolean(false));
  in.now = fixed_now();
  Result<std::string> r = t->render(in);
  CHECK_TRUE_TEXT(r.ok(), r.status().to_string().c_str());
  STRCMP_EQUAL("<s><user>Hi<assistant>|True|True|False|False|15 Jan 2026", r->c_str());
}

TEST(ChatTemplate, ParsedTemplateIsReusable) {
  Result<ChatTemplate> t = ChatTemplate::parse("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}");
  CHECK_TRUE(t.ok());
  ChatTemplateInputs in;
  in.messages = *sn::engine::json_parse(R"([{}, {}])");
  for (int k = 0; k < 3; ++k) {
    Result<std::string> r = t->render(in);
    CHECK_TRUE(r.ok());
    STRCMP_EQUAL("2", r->c_str());
  }
}

TEST(ChatTemplate, ReadsTemplateAndSpecialTokensFromGguf) {
  sn::engine::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 7);  // out of range: not passed
  w.add_string("tokenizer.chat_template", "{{ bos_token }}{{ messages[0].content }}{{ eos_token is defined }}");
  Result<sn::engine::GgufFile> f = sn::engine::GgufFile::from_bytes("chat.gguf", w.serialize());
  CHECK_TRUE(f.ok());
  Result<sn::engine::GgufChatTemplate> g = sn::engine::chat_template_from_gguf(*f);
  CHECK_TRUE_TEXT(g.ok(), g.status().to_string().c_str());
  STRCMP_EQUAL("<s>", g->bos_token->c_str());
  CHECK_FALSE(g->eos_token.has_value());
  Result<ChatTemplate> t = ChatTemplate::parse(g->source);
  CHECK_TRUE(t.ok());
  ChatTemplateInputs in;
  in.messages = *sn::engine::json_parse(R"([{"role": "user", "content": "hi"}])");
  in.bos_token = g->bos_token;
  in.eos_token = g->eos_token;
  STRCMP_EQUAL("<s>hiFalse", t->render(in)->c_str());

  sn::engine::GgufWriter bare;
  bare.add_string("general.architecture", "llama");
  Result<sn::engine::GgufFile> b = sn::engine::GgufFile::from_bytes("bare.gguf", bare.serialize());
  CHECK_TRUE(b.ok());
  Result<sn::engine::GgufChatTemplate> none = sn::engine::chat_template_from_gguf(*b);
  CHECK(none.status().code() == Status::Code::kNotFound);
  CHECK(contains(none.status().message(), "bare.gguf"));
}

TEST_GROUP(ChatTemplateJson){};

TEST(ChatTemplateJson, ParsesInOrderWithIntsFloatsAndEscapes) {
  Result<JsonValue> j = sn::engine::json_parse(R"( {"b": 1, "a": [2.5, -3, 1e2, true, null], "s": "\u00e9\ud83d\ude00\n\"/"} )");
  CHECK_TRUE_TEXT(j.ok(), j.status().to_string().c_str());
  CHECK(j->kind == JsonValue::Kind::kObject);
  LONGS_EQUAL(3, j->object.size());
  STRCMP_EQUAL("b", j->object[0].first.c_str());
  CHECK(j->object[0].second.kind == JsonValue::Kind::kInt);
  const JsonValue* a = j->find("a");
  CHECK(a != nullptr && a->array.size() == 5);
  CHECK(a->array[0].kind == JsonValue::Kind::kFloat);
  CHECK(a->array[1].kind == JsonValue::Kind::kInt && a->array[1].i == -3);
  CHECK(a->array[2].kind == JsonValue::Kind::kFloat && a->array[2].f == 100.0);
  STRCMP_EQUAL("é😀\n\"/", j->find("s")->s.c_str());
}

TEST(ChatTemplateJson, RejectsMalformedInput) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "01", "1.", "tru", "{} x", "\"\\q\"", "\"a\nb\""}) {
    CHECK_FALSE_TEXT(sn::engine::json_parse(bad).ok(), bad);
  }
  std::string deep(600, '[');
  deep += std::string(600, ']');
  CHECK_FALSE(sn::engine::json_parse(deep).ok());
}

namespace {

struct CliRun {
  int code = -1;
  std::string out;
};

CliRun run_cli(const std::string& args) {
  const std::string cmd = sn::testing::bin_dir() + "/supernode render-template " + args;
  CliRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

TEST_GROUP(ChatTemplateCli){};

TEST(ChatTemplateCli, RendersByteExactAndReportsErrors) {
  sn::testing::TempDir dir;
  sn::testing::write_file(dir.file("t.jinja"), "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"
                                               "{% if add_generation_prompt %}>{% endif %}{{ enable_thinking }}\n");
  sn::testing::write_file(dir.file("c.json"), R"({"messages": [{"role": "user", "content": "héllo\n"}],
      "add_generation_prompt": true, "tools": null, "extra_variables": {"enable_thinking": true}, "bos_token": "<s>"})");
  CliRun ok = run_cli(dir.file("t.jinja") + " " + dir.file("c.json"));
  LONGS_EQUAL(0, ok.code);
  STRCMP_EQUAL("<s>héllo\n>True", ok.out.c_str());

  sn::testing::write_file(dir.file("bad.jinja"), "{{ raise_exception('no system role') }}");
  CliRun err = run_cli(dir.file("bad.jinja") + " " + dir.file("c.json") + " 2>&1");
  LONGS_EQUAL(1, err.code);
  CHECK_TEXT(contains(err.out, "no system role"), err.out.c_str());

  LONGS_EQUAL(2, run_cli(dir.file("t.jinja") + " 2>/dev/null").code);
  LONGS_EQUAL(2, run_cli("--no-such-flag a b 2>/dev/null").code);
  LONGS_EQUAL(1, run_cli(dir.file("t.jinja") + " " + dir.file("missing.json") + " 2>/dev/null").code);
  CliRun help = run_cli("--help");
  LONGS_EQUAL(0, help.code);
  CHECK(contains(help.out, "usage: supernode render-template"));
}

// ----- budget: hostile templates end quickly with an error -----

namespace {

bool exhausted(const Status& s) { return s.code() == Status::Code::kResourceExhausted; }

// A 1 MiB limit on values: the same checks as the default 16 MiB, reached sooner.
ChatTemplateLimits small_values() {
  ChatTemplateLimits l;
  l.max_value_bytes = 1u << 20;
  return l;
}

// The render of `tpl` fails with resource_exhausted whose message names `what`.
void check_exhausted(const std::string& tpl, const char* what, ChatTemplateLimits limits = {}) {
  Status s = render_err(tpl, "{}", limits);
  CHECK_TEXT(exhausted(s), (tpl.substr(0, 200) + " -> " + s.to_string()).c_str());
  CHECK_TEXT(contains(s.message(), what), (tpl.substr(0, 200) + " -> " + s.to_string()).c_str());
}

// The render of `tpl` fails as Python's would (invalid_argument naming `what`).
void check_python_error(const std::string& tpl, const char* what) {
  Status s = render_err(tpl);
  CHECK_TEXT(s.code() == Status::Code::kInvalidArgument, (tpl + " -> " + s.to_string()).c_str());
  CHECK_TEXT(contains(s.message(), what), (tpl + " -> " + s.to_string()).c_str());
}

std::string repeated(const std::string& part, int n) {
  std::string out;
  for (int k = 0; k < n; ++k) out += part;
  return out;
}

}  // namespace

TEST_GROUP(ChatTemplateBudget){};

TEST(ChatTemplateBudget, PowersTakeLogarithmicTimeAndOverflowIsAnError) {
  STRCMP_EQUAL("1 1 0 4611686018427387904 -9223372036854775808",
               render_ok("{{ 1 ** 100000000 }} {{ (-1) ** 1000000000000000000 }} {{ 0 ** 9223372036854775807 }} "
                         "{{ 2 ** 62 }} {{ (-2) ** 63 }}").c_str());
  check_python_error("{{ 2 ** 100000000 }}", "OverflowError: integer overflow in '**'");
  check_python_error("{{ 2 ** 63 }}", "OverflowError");
}

TEST(ChatTemplateBudget, IntegerOverflowIsAnErrorNotUndefinedBehaviour) {
  const std::string min = "(-9223372036854775807 - 1)";
  STRCMP_EQUAL("-9223372036854775808 0 9223372036854775807",
               render_ok("{{ " + min + " }} {{ " + min + " % -1 }} {{ (" + min + " + 1) | abs }}").c_str());
  check_python_error("{{ 9223372036854775807 + 1 }}", "integer overflow in '+'");
  check_python_error("{{ " + min + " - 1 }}", "integer overflow in '-'");
  check_python_error("{{ 4294967296 * 4294967296 }}", "integer overflow in '*'");
  check_python_error("{{ " + min + " // -1 }}", "integer overflow in '//'");
  check_python_error("{{ -" + min + " }}", "integer overflow in 'unary -'");
  check_python_error("{{ " + min + " | abs }}", "integer overflow in 'abs()'");
  check_python_error("{{ [9223372036854775807, 1] | sum }}", "integer overflow in 'sum'");
  check_python_error("{{ 1e300 | int }}", "OverflowError: int too large");
  check_python_error("{{ '1e300' | int }}", "OverflowError: int too large");
  check_python_error("{{ '%d' % 1e300 }}", "OverflowError: int too large");
  // Ranges and slices whose arithmetic would step past int64.
  STRCMP_EQUAL("[9223372036854775800, 9223372036854775803, 9223372036854775806]|b|"
               "[-9223372036854775808, -1, 9223372036854775806]|[9223372036854775807, 0, -9223372036854775807]",
               render_ok("{{ range(9223372036854775800, 9223372036854775807, 3) | list }}|{{ 'abc'[1::9223372036854775807] }}|"
                         "{{ range(" + min + ", 9223372036854775807, 9223372036854775807) | list }}|"
                         "{{ range(9223372036854775807, " + min + ", -9223372036854775807) | list }}").c_str());
  check_python_error("{{ range(" + min + ", 9223372036854775807) | length }}", "Range too big");
  check_python_error("{{ range(1000000000000) | length }}", "Range too big");
  check_python_error("{{ range(10 ** 12) | length }}", "Range too big");
}

TEST(ChatTemplateBudget, RepetitionIsSizedBeforeItAllocates) {
  check_exhausted("{{ 'x' * 2 ** 62 }}", "max_value_bytes");
  // 4 * 2**62 wraps around to 0 in 64 bits: the old size check passed it.
  check_exhausted("{{ 'xxxx' * 2 ** 62 }}", "repetition ('*')");
  check_exhausted("{{ 2 ** 62 * 'xxxx' }}", "repetition ('*')");
  check_exhausted("{{ [1, 2] * 2 ** 62 }}", "repetition ('*')");
  check_exhausted("{{ ([1] * 1000000) | length }}", "max_value_bytes");
  // A list of copies of a string holds every copy.
  check_exhausted("{% set s = 'x' * 1000000 %}{{ ([s] * 100) | length }}", "max_value_bytes");
  // Nothing repeated is nothing, whatever the count (no loop of 2**62 empty appends).
  STRCMP_EQUAL("[]", render_ok("{{ '' * 2 ** 62 }}{{ [] * 2 ** 62 }}").c_str());
}

TEST(ChatTemplateBudget, DoublingStringsAndListsIsBounded) {
  // A set in a loop body is local to the iteration (jinja2 scoping): this doubles nothing.
  STRCMP_EQUAL("1", render_ok("{% set s = 'x' %}{% for i in range(60) %}{% set s = s ~ s %}{% endfor %}{{ s | length }}").c_str());
  // ... but straight-line code, macro recursion and namespaces do.
  check_exhausted("{% set s = 'x' %}" + repeated("{% set s = s + s %}", 60) + "{{ s | length }}", "max_value_bytes");
  const std::string loops[] = {
      "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}{{ d('x', 60) | length }}",
      "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
      "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = '%s%s' % (ns.s, ns.s) %}{% endfor %}",
      "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = [ns.s, ns.s] | join %}{% endfor %}",
      "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = '{}{}'.format(ns.s, ns.s) %}{% endfor %}",
      "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s | replace('x', 'xx') %}{% endfor %}",
      "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s | indent(ns.s | length, true) %}{% endfor %}",
      "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
      "{% set s = 'x' * 100000 %}{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = ns.l + [s] %}{% endfor %}",
  };
  for (const std::string& t : loops) check_exhausted(t, "max_value_bytes", small_values());
}

TEST(ChatTemplateBudget, PaddingAndReplacingAreSizedBeforeTheyAllocate) {
  // Sizes far beyond memory fail at once, before anything is allocated.
  check_exhausted("{{ 'a\nb' | indent(10 ** 12) }}", "indent width");
  check_exhausted("{{ {'a': [1]} | tojson(indent=10 ** 12) }}", "tojson indent");
  check_exhausted("{{ '%999999999999d' % 1 }}", "format width");
  check_exhausted("{{ '%.99999999f' % 1.5 }}", "format width");
  check_exhausted("{{ 'x'.replace('', 'y' * 10000000) }}", "replace()");
  // Multiplying a value's size past max_value_bytes fails too.
  const ChatTemplateLimits lim = small_values();
  check_exhausted("{{ ('a\n' * 1000) | indent(2000) }}", "indent", lim);
  check_exhausted("{{ [[[[[[1]]]]]] | tojson(indent=' ' * 300000) }}", "tojson", lim);
  check_exhausted("{{ ('x' * 10000) | replace('x', 'y' * 1000) }}", "replace()", lim);
  check_exhausted("{{ ('x' * 10000).replace('x', 'y' * 1000) }}", "replace()", lim);
  check_exhausted("{{ ('x' * 10000).replace('', 'y' * 1000) }}", "replace()", lim);
  check_exhausted("{{ range(5000) | map('string') | join('x' * 1000) }}", "join", lim);
  check_exhausted("{{ ('x' * 1000).join(range(5000) | map('string')) }}", "join()", lim);
  check_exhausted("{{ ('<&>\"' * 100000) | escape | length }}", "escape", lim);
  check_exhausted("{{ ('\x01' * 300000) | tojson | length }}", "tojson", lim);
  check_exhausted("{{ ['\x01' * 300000] | string | length }}", "repr() of a string", lim);
  // Within the limits these agree with Python.
  STRCMP_EQUAL("    a\n    b|{\n   \"a\": 1\n}|     7|a-b-c|1.50", render_ok("{{ 'a\nb' | indent(4, true) }}|{{ {'a': 1} | tojson(indent=3) }}|"
                                                                "{{ '%6d' % 7 }}|{{ 'a b c'.replace(' ', '-') }}|{{ '%.2f' % 1.5 }}").c_str());
  STRCMP_EQUAL((std::string(600, ' ') + "1").c_str(), render_ok("{{ '%601d' % 1 }}").c_str());
}

TEST(ChatTemplateBudget, SplittingAndIteratingAreBounded) {
  // Each piece or character becomes a value of its own, far larger than one byte.
  const ChatTemplateLimits lim = small_values();
  check_exhausted("{% for c in 'x' * 100000 %}{% endfor %}", "iterating a string", lim);
  check_exhausted("{{ ('x' * 100000) | list | length }}", "iterating a string", lim);
  check_exhausted("{{ ('a,' * 100000).split(',') | length }}", "split()", lim);
  check_exhausted("{{ ('a\n' * 100000).splitlines() | length }}", "splitlines()", lim);
  check_exhausted("{{ ('a ' * 100000).split() | length }}", "split()", lim);
  check_exhausted("{{ ('a,' * 100000).rsplit(',', 1000000) | length }}", "rsplit()", lim);
  check_exhausted("{{ ('a' * 100000) | map('upper') | list | length }}", "iterating a string", lim);
  STRCMP_EQUAL("['a,b', 'c']|['a', 'b,c']|5|-1", render_ok("{{ 'a,b,c'.rsplit(',', 1) }}|{{ 'a,b,c'.split(',', 1) }}|"
                                                         "{{ 'abcab'.rfind('') }}|{{ 'ab'.rfind('abc') }}").c_str());
}

TEST(ChatTemplateBudget, SearchingIsLinearInTheTextSearched) {
  // std::string::find would compare about 2M x 2M bytes here; these finish at once.
  STRCMP_EQUAL("False|-1|-1|0|1", render_ok("{% set h = 'a' * 4000000 %}{% set n = 'a' * 2000000 ~ 'b' %}{{ n in h }}|{{ h.find(n) }}|"
                                           "{{ h.rfind('b' ~ 'a' * 2000000) }}|{{ h.count(n) }}|{{ h.split(n) | length }}").c_str());
  STRCMP_EQUAL("0", render_ok("{{ ('x' * 1000000).strip('c' * 1000000 ~ 'x') | length }}").c_str());
}

TEST(ChatTemplateBudget, DeepExpressionsAreSyntaxErrors) {
  const std::vector<std::string> deep = {
      "{{ " + repeated("(", 20000) + "1" + repeated(")", 20000) + " }}",
      "{{ " + repeated("[", 20000) + repeated("]", 20000) + " }}",
      "{{ " + repeated("{'a': ", 20000) + "1" + repeated("}", 20000) + " }}",
      "{{ " + repeated("not ", 20000) + "1 }}",
      "{{ " + repeated("-", 20000) + "1 }}",
      "{{ 1" + repeated(" + 1", 20000) + " }}",
      "{{ 'a'" + repeated(" ~ 'a'", 20000) + " }}",
      "{{ x" + repeated(" | string", 20000) + " }}",
      "{{ x" + repeated(".a", 20000) + " }}",
      "{{ x" + repeated("[0]", 20000) + " }}",
      "{{ x" + repeated("()", 20000) + " }}",
      "{{ 1" + repeated(" if x", 20000) + " }}",
      "{{ 2" + repeated(" ** 2", 20000) + " }}",
      repeated("{% for x in y %}", 20000),
  };
  for (const std::string& t : deep) {
    Result<ChatTemplate> r = ChatTemplate::parse(t);
    CHECK_FALSE_TEXT(r.ok(), t.substr(0, 40).c_str());
    CHECK_TEXT(contains(r.status().message(), "TemplateSyntaxError") && contains(r.status().message(), "nested too deeply"),
               r.status().to_string().c_str());
  }
  // The real templates' longest chains are far shorter than the limit.
  STRCMP_EQUAL("200", render_ok("{{ 1" + repeated(" + 1", 199) + " }}").c_str());
}

TEST(ChatTemplateBudget, EvaluationDepthIsBoundedAcrossMacroCalls) {
  // Each call nests statements and expressions; with the call limit lifted, the
  // evaluation depth still stops the recursion long before the stack runs out (this
  // test passes with a 2 MiB stack in a sanitizer build).
  ChatTemplateLimits lim;
  lim.max_call_depth = 1000000;
  const std::string chain = "1" + repeated(" + (1", 60) + " + f(n + 1)" + repeated(")", 60);
  const std::string recursions[] = {
      "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
      "{% macro f(n) %}{% if true %}{% for i in [1] %}{{ ((f(n + 1) | string) ~ 'x') | trim }}{% endfor %}{% endif %}"
      "{% endmacro %}{{ f(0) }}",
      "{% macro f(n) %}{% for i in [1] %}{% for j in [1] if true %}{% set x %}{% filter upper %}{{ f(n + 1) }}{% endfilter %}"
      "{% endset %}{{ x }}{% endfor %}{% endfor %}{% endmacro %}{{ f(0) }}",
      "{% macro f(n) %}{{ " + chain + " }}{% endmacro %}{{ f(0) }}",
      "{% macro f(n) %}{{ [1] | map('string') | list if f(n + 1) else [{'a': (f(n + 1), 2)[0:1]}] }}{% endmacro %}{{ f(0) }}",
  };
  for (const std::string& t : recursions) check_exhausted(t, "max_eval_depth", lim);
}

TEST(ChatTemplateBudget, DeepOrCyclicValuesAreBounded) {
  check_exhausted("{% set ns = namespace(l=[]) %}{% for i in range(10000) %}{% set ns.l = [ns.l] %}{% endfor %}",
                  "nested deeper than 512");
  check_exhausted("{% set ns = namespace(d={}) %}{% for i in range(10000) %}{% set ns.d = {'a': ns.d} %}{% endfor %}",
                  "nested deeper than 512");
  check_exhausted("{% set ns = namespace(l=[]) %}{% for i in range(10000) %}{% set ns.l = dict(a=ns.l) %}{% endfor %}",
                  "nested deeper than 512");
  // A namespace may hold itself (Python prints it with "..."); printing it is refused
  // rather than recursing forever, and the cycle is freed when the render ends.
  check_exhausted("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", "nested deeper than 512");
  check_exhausted("{% set ns = namespace(me=none) %}{% set ns.me = [ns] %}{{ ns }}", "nested deeper than 512");
  // A chain of namespaces is not limited while it is built, but printing it is, and
  // destroying it at the end of the render does not recurse down the chain.
  check_exhausted("{% set ns = namespace(p=none) %}{% for i in range(10000) %}{% set ns.p = namespace(p=ns.p) %}{% endfor %}{{ ns }}",
                  "nested deeper than 512");
  STRCMP_EQUAL("done", render_ok("{% set ns = namespace(p=none) %}{% for i in range(10000) %}{% set ns.p = namespace(p=[ns.p]) %}"
                                 "{% endfor %}done").c_str());
}

TEST(ChatTemplateBudget, StepsBoundTheWorkOfARender) {
  // Loops that do nothing but look things up.
  ChatTemplateLimits lim;
  lim.max_loop_iterations = 1ull << 40;
  lim.max_steps = 200000;
  check_exhausted("{% for i in range(100000) %}{% for j in range(100000) %}{% if i == j %}{% endif %}{% endfor %}{% endfor %}",
                  "max_steps", lim);
  // Work proportional to the bytes handled: each `in` scans a megabyte.
  check_exhausted("{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{% if 'y' in s %}{% endif %}{% endfor %}",
                  "max_steps", lim);
  // Comparing lists that share their parts would walk 2**60 elements.
  check_exhausted("{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}"
                  "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
                  "max_steps", lim);
  // Many distinct names make every lookup a long scan.
  std::string names;
  for (int k = 0; k < 2000; ++k) names += "{% set v" + std::to_string(k) + " = 1 %}";
  check_exhausted(names + "{% for i in range(100000) %}{{ undefined_name }}{% endfor %}", "max_steps", lim);
  // An iteration costs a step even when its body is empty.
  check_exhausted("{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}", "max_steps", lim);
}

TEST(ChatTemplateBudget, AllocationsAreBoundedInTotal) {
  ChatTemplateLimits unlimited_steps;
  unlimited_steps.max_steps = 1ull << 40;
  check_exhausted("{% for i in range(1000) %}{% set s = 'x' * 1000000 %}{% endfor %}", "max_alloc_bytes", unlimited_steps);
  ChatTemplateLimits lim;
  lim.max_alloc_bytes = 1000000;
  check_exhausted("{% for i in range(1000) %}{% set s = range(1000) | list %}{% endfor %}", "max_alloc_bytes", lim);
  check_exhausted("{% for i in range(100000) %}{% set ns = namespace() %}{% endfor %}", "max_alloc_bytes", lim);
  check_exhausted("{% for i in range(100000) %}{% macro m() %}{% endmacro %}{% endfor %}", "max_alloc_bytes", lim);
}

TEST(ChatTemplateBudget, LexingManyTrimmedTagsIsLinear) {
  // Each `-}}` used to re-decode the whole rest of the source: quadratic in its size.
  std::string tpl = repeated("{{- 'a' -}}  \n", 100000);
  Result<ChatTemplate> t = ChatTemplate::parse(tpl);
  CHECK_TRUE_TEXT(t.ok(), t.status().to_string().c_str());
  Result<std::string> r = t->render_with({}, fixed_now());
  CHECK_TRUE(r.ok());
  LONGS_EQUAL(100000, r->size());
}

TEST(ChatTemplateBudget, RealTemplatesUseLittleOfTheBudget) {
  std::optional<std::string> dir = sn::testing::shared_dir("ChatTemplateBudget");
  if (!dir) return;
  const std::string base = *dir + "/reference/chat-templates";
  if (!std::filesystem::exists(base + "/cases.json")) return;
  Result<JsonValue> cases = sn::engine::json_parse(sn::testing::read_file(base + "/cases.json"));
  CHECK_TRUE(cases.ok());
  // A hundredth of the default steps and a small allocation total suffice for every case.
  ChatTemplateLimits tight;
  tight.max_steps = 100000;
  tight.max_alloc_bytes = 4u << 20;
  tight.max_eval_depth = 200;
  int rendered = 0;
  for (const char* stem : {"meta-llama-Llama-3.1-8B-Instruct", "Qwen-Qwen3-0.6B", "deepseek-ai-DeepSeek-V3.2", "GLM-4.6",
                           "google-gemma-4-31B-it", "ibm-granite-granite-4.0", "openai-gpt-oss-120b", "moonshotai-Kimi-K2",
                           "CohereForAI-c4ai-command-r7b-12-2024-tool_use", "mistralai-Ministral-3-14B-Reasoning-2512"}) {
    Result<ChatTemplate> roomy = ChatTemplate::parse(sn::testing::read_file(base + "/" + stem + ".jinja"));
    Result<ChatTemplate> tpl = ChatTemplate::parse(sn::testing::read_file(base + "/" + stem + ".jinja"), tight);
    CHECK_TRUE(roomy.ok() && tpl.ok());
    for (const JsonValue& c : cases->find("cases")->array) {
      ChatTemplateInputs in;
      in.messages = *c.find("messages");
      in.tools = *c.find("tools");
      in.add_generation_prompt = c.find("add_generation_prompt")->b;
      if (const JsonValue* x = c.find("extra_variables")) in.extra_variables = x->object;
      in.bos_token = "<s>";
      in.eos_token = "</s>";
      in.now = fixed_now();
      Result<std::string> want = roomy->render(in);
      Result<std::string> got = tpl->render(in);
      const std::string what = std::string(stem) + "__" + c.find("name")->s + ": " + got.status().to_string();
      CHECK_TEXT(got.ok() == want.ok() && (!got.ok() || *got == *want), what.c_str());
      if (!got.ok()) CHECK_TEXT(!exhausted(got.status()), what.c_str());
      ++rendered;
    }
  }
  CHECK(rendered > 100);
}

// ----- the reference renders -----

namespace {

struct Special {
  const char* stem;
  const char* bos;  // nullptr: not passed
  const char* eos;
};

// The BOS/EOS table of ../shared/reference/chat-templates/README.md.
const Special kSpecial[] = {
    {"meta-llama-Llama-3.1-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>"},
    {"meta-llama-Llama-3.2-3B-Instruct", "<|begin_of_text|>", "<|eot_id|>"},
    {"Qwen-Qwen2.5-7B-Instruct", nullptr, "<|im_end|>"},
    {"Qwen-Qwen3-0.6B", nullptr, "<|im_end|>"},
    {"Qwen-QwQ-32B", nullptr, "<|im_end|>"},
    {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"},
    {"deepseek-ai-DeepSeek-V3.1", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"},
    {"deepseek-ai-DeepSeek-V3.2", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"},
    {"GLM-4.6", nullptr, "<|endoftext|>"},
    {"mistralai-Mistral-Nemo-Instruct-2407", "<s>", "</s>"},
    {"Mistral-Small-3.2-24B-Instruct-2506", "<s>", "</s>"},
    {"mistralai-Ministral-3-14B-Reasoning-2512", "<s>", "</s>"},
    {"google-gemma-2-2b-it", "<bos>", "<eos>"},
    {"google-gemma-4-31B-it", "<bos>", "<eos>"},
    {"microsoft-Phi-3.5-mini-instruct", "<s>", "<|endoftext|>"},
    {"HuggingFaceTB-SmolLM3-3B", nullptr, "<|im_end|>"},
    {"ibm-granite-granite-3.3-2B-Instruct", "<|end_of_text|>", "<|end_of_text|>"},
    {"ibm-granite-granite-4.0", "<|end_of_text|>", "<|end_of_text|>"},
    {"CohereForAI-c4ai-command-r7b-12-2024-tool_use", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"},
    {"openai-gpt-oss-120b", "<|startoftext|>", "<|return|>"},
    {"moonshotai-Kimi-K2", "[BOS]", "[EOS]"},
};

}  // namespace

TEST_GROUP(ModelChatTemplates){};

TEST(ModelChatTemplates, EveryReferenceCaseMatchesTransformers) {
  std::optional<std::string> dir = sn::testing::shared_dir("ModelChatTemplates");
  if (!dir) return;
  const std::string base = *dir + "/reference/chat-templates";
  if (!std::filesystem::exists(base + "/cases.json")) {
    std::fprintf(stderr, "SKIP: ModelChatTemplates needs %s/cases.json\n", base.c_str());
    return;
  }
  Result<JsonValue> cases_doc = sn::engine::json_parse(sn::testing::read_file(base + "/cases.json"));
  CHECK_TRUE_TEXT(cases_doc.ok(), cases_doc.status().to_string().c_str());
  const JsonValue* cases = cases_doc->find("cases");
  CHECK_TRUE(cases != nullptr && cases->kind == JsonValue::Kind::kArray);

  int total = 0, passed = 0, exact_raise_messages = 0;
  std::string failures;
  for (const Special& sp : kSpecial) {
    Result<ChatTemplate> tpl = ChatTemplate::parse(sn::testing::read_file(base + "/" + sp.stem + ".jinja"));
    for (const JsonValue& c : cases->array) {
      const std::string name = std::string(sp.stem) + "__" + c.find("name")->s;
      ++total;
      if (!tpl.ok()) {
        failures += name + ": parse failed: " + tpl.status().message() + "\n";
        continue;
      }
      ChatTemplateInputs in;
      in.messages = *c.find("messages");
      in.tools = *c.find("tools");
      in.add_generation_prompt = c.find("add_generation_prompt")->b;
      if (const JsonValue* x = c.find("extra_variables")) in.extra_variables = x->object;
      if (sp.bos) in.bos_token = sp.bos;
      if (sp.eos) in.eos_token = sp.eos;
      in.now = fixed_now();
      Result<std::string> r = tpl->render(in);
      const std::string txt = base + "/expected/" + name + ".txt";
      if (std::filesystem::exists(txt)) {
        const std::string expected = sn::testing::read_file(txt);
        if (!r.ok()) {
          failures += name + ": " + r.status().message() + "\n";
        } else if (*r != expected) {
          size_t k = 0;
          while (k < r->size() && k < expected.size() && (*r)[k] == expected[k]) ++k;
          failures += name + ": differs at byte " + std::to_string(k) + "\n";
        } else {
          ++passed;
        }
      } else {
        const std::string expected = sn::testing::read_file(base + "/expected/" + name + ".error");
        if (r.ok()) {
          failures += name + ": rendered, but transformers fails with: " + expected + "\n";
        } else {
          ++passed;
          if (r.status().message() == "chat template: " + expected) ++exact_raise_messages;
        }
      }
    }
  }
  std::fprintf(stderr, "\nModelChatTemplates: %d of %d reference cases match (%d raise_exception messages exact)\n",
               passed, total, exact_raise_messages);
  STRCMP_EQUAL("", failures.c_str());
  LONGS_EQUAL(231, total);
}
