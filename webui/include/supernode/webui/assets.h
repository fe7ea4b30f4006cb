// The admin web page's static files (HTML, CSS, ES modules, the Chart.js ES build from
// Debian's libjs-chart.js), compiled into the daemon at build time by tools/embed_assets.cpp.
// The daemon's static-asset handler looks a request path up here and answers with the body
// (or `gzip` when the client accepts it and it is not empty), `content_type`, and `etag`
// for If-None-Match; everything lives in read-only data, so nothing is read from disk at
// run time and the page works air-gapped.
//
// Usage:
//   if (const sn::webui::Asset* a = sn::webui::find_asset(target_path)) {
//     // 304 when If-None-Match == a->etag; else 200 with a->body (or a->gzip, adding
//     // Content-Encoding: gzip and Vary: Accept-Encoding), Content-Type a->content_type,
//     // ETag a->etag, and the header kContentSecurityPolicy.
//   }
//
// Thread safety: every function and every byte here is immutable; call from any thread.
#pragma once

#include <span>
#include <string_view>

namespace sn::webui {

struct Asset {
  std::string_view path;          // URL path, e.g. "/index.html", "/assets/app.js"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view body;          // the file's bytes
  std::string_view gzip;          // gzip of body; empty when it would not be smaller
  std::string_view etag;          // strong ETag of body, quoted: "\"<32 hex digits>\""
};

// The asset at URL path `path` (query string already removed), or nullptr when there is
// none. "/" is "/index.html". The result points into static storage: never freed.
[[nodiscard]] const Asset* find_asset(std::string_view path) noexcept;

// Every asset, sorted by path.
[[nodiscard]] std::span<const Asset> all_assets() noexcept;

// The Content-Security-Policy the page is written for (no inline script or style, no eval,
// no other origin): send it with every asset, and with the admin API's answers.
inline constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

}  // namespace sn::webui
