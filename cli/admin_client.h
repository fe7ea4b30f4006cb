// The client side of supernoded's Unix admin socket (daemon/include/supernode/daemon/admin.h
// gives the protocol), shared by the admin commands (cmd_admin.cpp) and `update`
// (cmd_update.cpp, for backups and audit records).
// Thread safety: free functions; each call uses its own connection.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "supernode/base/args.h"
#include "supernode/base/status.h"

namespace sn::cli {

inline constexpr const char* kDefaultAdminSocket = "/run/supernode/admin.sock";

// One request, one answer line (after progress lines, which go to `progress`). Errors:
// io_error when the daemon cannot be reached or answers garbage; invalid_argument carrying
// the daemon's error when it answers {"ok":false}.
[[nodiscard]] Result<nlohmann::json> admin_call(const std::string& path, const nlohmann::json& req,
                                                const std::function<void(const nlohmann::json&)>& progress = {});

// --admin-socket, else `supernode --admin-socket PATH ...` (SUPERNODE_ADMIN_SOCKET), else the default.
[[nodiscard]] std::string admin_socket_path(const Args& args);

}  // namespace sn::cli
