// embed_assets: the build-time generator behind sn::webui::find_asset (assets.h). A host
// tool, run by webui/CMakeLists.txt through add_custom_command; never shipped.
//
//   embed_assets data  OUT.cpp INDEX FILE        the bytes of one asset (body and gzip) as
//                                                char arrays kBody<INDEX>, kGzip<INDEX>
//   embed_assets table OUT.cpp URL=FILE...       the sorted Asset table over those arrays
//                                                (the n-th URL=FILE is INDEX n)
//
// One data file per asset, so editing a page recompiles that page's bytes only; the
// table is small. OUT is rewritten only when its text changes (Ninja then skips the
// compile). Bytes are written as numbers, not as one string literal, which compilers cap.
// The gzip stream is deterministic (no name, mtime 0, level 9), so builds are reproducible;
// it is kept only when smaller than the body. The ETag is the first 128 bits of the body's
// SHA-256 in hex, quoted. Single-threaded; exits 1 with a message on any error.
#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error(path + ": read error");
  return data;
}

// Writes `text` to `path` unless the file already holds exactly that.
void write_if_changed(const std::string& path, const std::string& text) {
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::string old((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (old == text) return;
    }
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw std::runtime_error(path + ": write error");
}

std::string gzip(const std::string& data) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip wrapper; zlib writes mtime 0 and no file name.
  if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, data.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const size_t n = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed");
  out.resize(n);
  return out;
}

// The gzip bytes to embed: empty when they would not save anything.
std::string gzip_if_smaller(const std::string& body) {
  std::string z = gzip(body);
  if (z.size() >= body.size()) z.clear();
  return z;
}

std::string etag(const std::string& body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(body.data(), body.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  static const char kHex[] = "0123456789abcdef";
  std::string tag = "\"";
  for (unsigned i = 0; i < 16; ++i) {
    tag += kHex[md[i] >> 4];
    tag += kHex[md[i] & 15];
  }
  return tag + "\"";
}

std::string content_type(std::string_view file) {
  struct Ext {
    std::string_view ext, type;
  };
  static constexpr Ext kTypes[] = {
      {".html", "text/html; charset=utf-8"},       {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},  {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},                   {".json", "application/json"},
      {".png", "image/png"},                       {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},       {".webmanifest", "application/manifest+json"},
  };
  for (const Ext& e : kTypes) {
    if (file.size() >= e.ext.size() && file.substr(file.size() - e.ext.size()) == e.ext) {
      return std::string(e.type);
    }
  }
  throw std::runtime_error(std::string(file) + ": no content type known for this file extension");
}

// A C++ string literal for short text (paths, types, tags): printable ASCII only.
std::string quote(std::string_view s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
      throw std::runtime_error("unexpected character in \"" + std::string(s) + "\"");
    }
    q += c;
  }
  return q + "\"";
}

// `const char NAME[] = {...};`: ASCII bytes as decimals (compact, and valid whether char is
// signed or not), the rest as '\xNN' (of type char, so never a narrowing error). An empty
// array gets one 0 (C++ has no zero-length arrays); the table records the real size.
void append_array(std::string& out, const std::string& name, const std::string& bytes) {
  out += "extern const char " + name + "[];\nconst char " + name + "[] = {";
  if (bytes.empty()) out += "0";
  char buf[8];
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i % 24 == 0) out += '\n';
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b < 0x80) {
      std::snprintf(buf, sizeof buf, "%u,", b);
    } else {
      std::snprintf(buf, sizeof buf, "'\\x%02x',", b);
    }
    out += buf;
  }
  out += "};\n";
}

constexpr std::string_view kHeader =
    "// Generated by webui/tools/embed_assets.cpp at build time; do not edit.\n";

int run_data(const std::string& out_path, const std::string& index, const std::string& file) {
  const std::string body = read_file(file);
  std::string out(kHeader);
  out += "// " + file + "\n#include <cstddef>\n\nnamespace sn::webui::generated {\n\n";
  append_array(out, "kBody" + index, body);
  append_array(out, "kGzip" + index, gzip_if_smaller(body));
  out += "\n}  // namespace sn::webui::generated\n";
  write_if_changed(out_path, out);
  return 0;
}

int run_table(const std::string& out_path, const std::vector<std::string>& specs) {
  struct Row {
    std::string path, type, tag;
    size_t index, body_size, gzip_size;
  };
  std::vector<Row> rows;
  for (size_t i = 0; i < specs.size(); ++i) {
    const size_t eq = specs[i].find('=');
    if (eq == std::string::npos || specs[i][0] != '/') {
      throw std::runtime_error("bad asset \"" + specs[i] + "\": expected /URL/PATH=FILE");
    }
    const std::string url = specs[i].substr(0, eq), file = specs[i].substr(eq + 1);
    const std::string body = read_file(file);
    rows.push_back({url, content_type(url), etag(body), i, body.size(), gzip_if_smaller(body).size()});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.path < b.path; });
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].path == rows[i - 1].path) throw std::runtime_error("asset path twice: " + rows[i].path);
  }

  std::string out(kHeader);
  out += "#include <cstddef>\n\n#include \"asset_table.h\"\n\nnamespace sn::webui::generated {\n\n";
  for (size_t i = 0; i < specs.size(); ++i) {
    out += "extern const char kBody" + std::to_string(i) + "[];\nextern const char kGzip" + std::to_string(i) +
           "[];\n";
  }
  out += "\nconst Asset kAssets[] = {\n";
  for (const Row& r : rows) {
    const std::string n = std::to_string(r.index);
    out += "    {" + quote(r.path) + ", " + quote(r.type) + ",\n     {kBody" + n + ", " +
           std::to_string(r.body_size) + "}, {kGzip" + n + ", " + std::to_string(r.gzip_size) + "}, " +
           quote(r.tag) + "},\n";
  }
  out += "};\nconst std::size_t kAssetCount = " + std::to_string(rows.size()) +
         ";\n\n}  // namespace sn::webui::generated\n";
  write_if_changed(out_path, out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 4 && args[0] == "data") return run_data(args[1], args[2], args[3]);
    if (args.size() >= 2 && args[0] == "table") {
      return run_table(args[1], std::vector<std::string>(args.begin() + 2, args.end()));
    }
    std::fprintf(stderr,
                 "usage: embed_assets data OUT.cpp INDEX FILE\n"
                 "       embed_assets table OUT.cpp /URL/PATH=FILE...\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "embed_assets: %s\n", e.what());
    return 1;
  }
}
