// Static assets of the web UI (web_assets.h).
#include "web_assets.h"

// Boost.Asio's awaitable frames come from its own operator new/delete pair; GCC 12 under
// the sanitizers' -O2 cannot see through the coroutine frame allocation and reports a
// mismatch inside Asio's code (-Wmismatched-new-delete), a known false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "supernode/webui/assets.h"

#include "admin_api.h"

namespace sn::daemon {
namespace {

// Whether an Accept-Encoding header allows gzip (q=0 refuses it).
bool accepts_gzip(std::string_view header) {
  size_t i = 0;
  while (i < header.size()) {
    size_t end = header.find(',', i);
    if (end == std::string_view::npos) end = header.size();
    std::string_view item = header.substr(i, end - i);
    i = end + 1;
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    const size_t semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (coding != "gzip" && coding != "*") continue;
    if (semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      const size_t q = params.find("q=");
      if (q != std::string_view::npos) {
        std::string_view v = params.substr(q + 2);
        if (v.starts_with("0") && v.find_first_not_of("0.") >= v.find_first_of(",; ")) return false;
      }
    }
    return true;
  }
  return false;
}

net::awaitable<bool> serve_asset(Exchange& ex) {
  const webui::Asset* a = webui::find_asset(ex.path);
  if (a == nullptr) {
    const Reply missing = admin_error(http::status::not_found, "no such page " + ex.path, "not_found");
    const bool ok = co_await ex.out.send(missing);
    co_return ok;
  }
  Reply r{http::status::ok, "", std::string(a->content_type), {}, false};
  r.headers.emplace_back("ETag", std::string(a->etag));
  r.headers.emplace_back("Vary", "Accept-Encoding");
  // index.html is checked every time (it names the rest); the rest revalidates by ETag.
  r.headers.emplace_back("Cache-Control", "no-cache");
  const auto inm = ex.request[http::field::if_none_match];
  if (!inm.empty() && std::string_view(inm.data(), inm.size()).find(a->etag) != std::string_view::npos) {
    r.status = http::status::not_modified;
    const bool ok = co_await ex.out.send(r);
    co_return ok;
  }
  const auto ae = ex.request[http::field::accept_encoding];
  if (!a->gzip.empty() && accepts_gzip(std::string_view(ae.data(), ae.size()))) {
    r.body.assign(a->gzip);
    r.headers.emplace_back("Content-Encoding", "gzip");
  } else {
    r.body.assign(a->body);
  }
  const bool ok = co_await ex.out.send(r);
  co_return ok;
}

}  // namespace

void add_web_routes(Router& router) {
  router.add({http::verb::get, "/", Guard::kNone, ErrorStyle::kAdmin, 0, serve_asset, "/"});
  router.add({http::verb::get, "/index.html", Guard::kNone, ErrorStyle::kAdmin, 0, serve_asset, "/"});
  router.add({http::verb::get, "/assets/*", Guard::kNone, ErrorStyle::kAdmin, 0, serve_asset, "/assets"});
}

}  // namespace sn::daemon
