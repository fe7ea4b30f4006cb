// The embedded web assets (webui/include/supernode/webui/assets.h): every page the admin
// UI needs is there with the right content type, gzip bodies inflate to the originals,
// ETags are quoted and distinct, the table is sorted, and unknown paths find nothing.
// Single-threaded (the test runner's thread).
#include <zlib.h>

#include <set>
#include <string>
#include <string_view>

#include "CppUTest/TestHarness.h"
#include "supernode/webui/assets.h"

namespace {

std::string gunzip(std::string_view z) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return "<inflateInit2 failed>";
  std::string out;
  char buf[16384];
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data()));
  zs.avail_in = static_cast<uInt>(z.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? out : "<inflate failed: " + std::to_string(rc) + ">";
}

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

}  // namespace

TEST_GROUP(WebuiAssets){};

TEST(WebuiAssets, RootIsIndexHtml) {
  const sn::webui::Asset* index = sn::webui::find_asset("/index.html");
  CHECK(index != nullptr);
  POINTERS_EQUAL(index, sn::webui::find_asset("/"));
  STRCMP_EQUAL("text/html; charset=utf-8", std::string(index->content_type).c_str());
  CHECK(contains(index->body, "<!doctype html>"));
  CHECK(contains(index->body, "/assets/app.js"));
}

TEST(WebuiAssets, PagesAndChartJsAreEmbedded) {
  for (const char* path : {"/assets/app.js", "/assets/api.js", "/assets/style.css", "/assets/pages/dashboard.js",
                           "/assets/pages/models.js", "/assets/pages/playground.js",
                           "/assets/vendor/chart.js/chart.mjs", "/assets/vendor/chart.js/chunks/helpers.segment.mjs"}) {
    const sn::webui::Asset* a = sn::webui::find_asset(path);
    CHECK_TEXT(a != nullptr, path);
    CHECK_TEXT(!a->body.empty(), path);
  }
  const sn::webui::Asset* chart = sn::webui::find_asset("/assets/vendor/chart.js/chart.mjs");
  STRCMP_EQUAL("text/javascript; charset=utf-8", std::string(chart->content_type).c_str());
  CHECK(contains(chart->body, "'./chunks/helpers.segment.mjs'"));
  STRCMP_EQUAL("text/css; charset=utf-8", std::string(sn::webui::find_asset("/assets/style.css")->content_type).c_str());
}

TEST(WebuiAssets, GzipInflatesToTheBody) {
  size_t compressed = 0;
  for (const sn::webui::Asset& a : sn::webui::all_assets()) {
    if (a.gzip.empty()) continue;
    ++compressed;
    CHECK_TEXT(a.gzip.size() < a.body.size(), std::string(a.path).c_str());
    CHECK_TEXT(gunzip(a.gzip) == a.body, std::string(a.path).c_str());
  }
  CHECK(!sn::webui::find_asset("/index.html")->gzip.empty());
  CHECK(compressed >= 5);
}

TEST(WebuiAssets, EtagsAreQuotedAndDistinct) {
  std::set<std::string_view> tags;
  for (const sn::webui::Asset& a : sn::webui::all_assets()) {
    CHECK_TEXT(a.etag.size() == 34 && a.etag.front() == '"' && a.etag.back() == '"', std::string(a.etag).c_str());
    CHECK_TEXT(tags.insert(a.etag).second, std::string(a.path).c_str());
  }
}

TEST(WebuiAssets, TableIsSortedAndLookupFindsEach) {
  const auto all = sn::webui::all_assets();
  CHECK(all.size() >= 10);
  for (size_t i = 0; i < all.size(); ++i) {
    if (i > 0) CHECK(all[i - 1].path < all[i].path);
    POINTERS_EQUAL(&all[i], sn::webui::find_asset(all[i].path));
  }
}

TEST(WebuiAssets, UnknownPathsFindNothing) {
  for (const char* path : {"", "/nope", "/index.htm", "/index.html/", "/assets/", "/assets/app.js?x=1", "index.html",
                           "/assets/../index.html", "/api/admin/state", "/ASSETS/APP.JS"}) {
    POINTERS_EQUAL_TEXT(nullptr, sn::webui::find_asset(path), path);
  }
}

TEST(WebuiAssets, NoInlineScriptOrStyleInIndex) {
  // The page is written for a CSP without 'unsafe-inline': scripts by src, no style attributes.
  const std::string_view html = sn::webui::find_asset("/index.html")->body;
  CHECK(!contains(html, "style=\""));
  CHECK(!contains(html, "<style"));
  CHECK(!contains(html, "<script>"));
  CHECK(!contains(html, "http://"));
  CHECK(!contains(html, "https://"));
  for (const char* handler : {"onclick=", "onload=", "onerror=", "onsubmit=", "javascript:"}) {
    CHECK_TEXT(!contains(html, handler), handler);
  }
}
