// Lookup over the generated asset table (asset_table.h): a binary search by path, since
// the generator writes the table sorted. Called by the daemon's static-asset handler.
// Thread safety: reads immutable data only; safe from any thread.
#include "supernode/webui/assets.h"

#include <algorithm>

#include "asset_table.h"

namespace sn::webui {

std::span<const Asset> all_assets() noexcept {
  return {generated::kAssets, generated::kAssetCount};
}

const Asset* find_asset(std::string_view path) noexcept {
  if (path == "/") path = "/index.html";
  const std::span<const Asset> assets = all_assets();
  const auto it = std::lower_bound(assets.begin(), assets.end(), path,
                                   [](const Asset& a, std::string_view p) { return a.path < p; });
  if (it == assets.end() || it->path != path) return nullptr;
  return &*it;
}

}  // namespace sn::webui
