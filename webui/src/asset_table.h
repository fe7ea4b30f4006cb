// The generated table of assets (written at build time by tools/embed_assets.cpp into the
// build tree as webui_asset_table.cpp): sorted by path, no duplicates. Private to webui.
// Thread safety: immutable.
#pragma once

#include <cstddef>

#include "supernode/webui/assets.h"

namespace sn::webui::generated {

extern const Asset kAssets[];
extern const std::size_t kAssetCount;

}  // namespace sn::webui::generated
