// The web UI's static files (webui/, compiled into the daemon) on an HTTP listener: GET /
// and /assets/..., with a strong ETag (304 on If-None-Match) and gzip when the client
// accepts it. The page's routes live after '#', so the server knows only these paths.
// Thread safety: add_web_routes before serving; the handlers are stateless.
#pragma once

#include "router.h"

namespace sn::daemon {

void add_web_routes(Router& router);

}  // namespace sn::daemon
