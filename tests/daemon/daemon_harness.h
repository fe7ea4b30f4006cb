// The real supernoded as a child process and raw HTTP/1.1 to it, for the daemon tests:
// each Daemon runs on a free port of 127.0.0.1 (API and metrics) over a state directory of
// its own and is stopped with SIGTERM by its destructor.
// Thread safety: test-thread helpers; http() and friends may be called from several threads.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace sn::testing::daemon {


struct HttpReply {
  int status = 0;
  std::string headers;
  std::string body;  // de-chunked
};

// A TCP connection to 127.0.0.1:port; -1 when it cannot be made.
inline int connect_local(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends POST /v1/completions with `body` on a new connection left open (keep-alive) for the
// caller to read from or hang up on; -1 when it cannot connect.
inline int send_completion(uint16_t port, const std::string& key, const std::string& body) {
  const int fd = connect_local(port);
  if (fd < 0) return -1;
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
                          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  return fd;
}

// One request on a fresh connection (Connection: close), read to the end.
inline HttpReply http(uint16_t port, const std::string& method, const std::string& path, const std::string& body = "",
               const std::string& key = "", const std::string& extra_headers = "") {
  HttpReply r;
  const int fd = connect_local(port);
  if (fd < 0) return r;
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
  if (!key.empty()) req += "Authorization: Bearer " + key + "\r\n";
  if (!body.empty() || method == "POST") {
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += extra_headers + "\r\n" + body;
  size_t off = 0;
  while (off < req.size()) {
    const ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[8192];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.size() < 12) return r;
  r.status = std::atoi(raw.c_str() + 9);
  r.headers = raw.substr(0, head_end);
  std::string rest = raw.substr(head_end + 4);
  if (r.headers.find("chunked") != std::string::npos) {
    size_t p = 0;
    while (p < rest.size()) {
      const size_t eol = rest.find("\r\n", p);
      if (eol == std::string::npos) break;
      const size_t len = std::strtoul(rest.c_str() + p, nullptr, 16);
      if (len == 0) break;
      r.body += rest.substr(eol + 2, len);
      p = eol + 2 + len + 2;
    }
  } else {
    r.body = rest;
  }
  return r;
}

inline std::string run_out(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  pclose(p);
  return out;
}

// The real daemon as a child process, stopped with SIGTERM by the destructor.
class Daemon {
 public:
  Daemon(const std::string& model, const std::string& state_dir_in, bool tls = false,
         std::vector<std::string> extra = {}) {
    const std::string state_dir = state_dir_in;
    const std::string out_file = state_dir + ".out";
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(out_file.c_str(), "w", stdout);
      (void)f;
      (void)std::freopen((state_dir + ".err").c_str(), "w", stderr);
      const std::string bin = sn::testing::bin_dir() + "/supernoded";
      const std::string admin = state_dir + "/admin.sock";
      std::vector<const char*> argv = {bin.c_str(), "--listen", "127.0.0.1:0", "--state-dir", state_dir.c_str(),
                                       "--admin-socket", admin.c_str(), "-m", model.c_str(), "-t", "2", "--context", "512",
                                       "--metrics-listen", "127.0.0.1:0"};
      if (!tls) argv.push_back("--plain-http");
      // Without tiers unless a test asks (the default host tier maps 1 GiB).
      if (extra.empty()) extra = {"--kv-host-mb", "0"};
      for (const std::string& e : extra) argv.push_back(e.c_str());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), const_cast<char* const*>(argv.data()));
      ::_exit(127);
    }
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::ifstream in(out_file);
      for (std::string line; std::getline(in, line);) {
        const uint16_t p = static_cast<uint16_t>(std::atoi(line.c_str() + line.rfind(':') + 1));
        if (line.rfind("metrics ", 0) == 0) metrics_port_ = p;
        if (line.rfind("admin ", 0) == 0) admin_port_ = p;
        if (line.rfind("listening ", 0) == 0) port_ = p;
      }
    }
    std::ifstream k(state_dir + "/initial-api-key");
    std::getline(k, key_);
  }
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  uint16_t port() const { return port_; }
  uint16_t metrics_port() const { return metrics_port_; }
  uint16_t admin_port() const { return admin_port_; }  // 0: the admin UI is on port()
  const std::string& key() const { return key_; }
  pid_t pid() const { return pid_; }
  // Waits for the process to end by itself; its exit status (-1 when it was not running).
  int wait_exit() {
    if (pid_ <= 0) return -1;
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  // A crash: SIGKILL, no drain, no flush.
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  uint16_t metrics_port_ = 0;
  uint16_t admin_port_ = 0;
  std::string key_;
};

// A tiny generated model at `dir`/tiny.gguf with a ChatML-style template, so that
// /v1/chat/completions works on it; returns its path.
inline std::string make_chat_model(const sn::testing::TempDir& dir) {
  const std::string model = dir.file("tiny.gguf");
  sn::testing::write_file(dir.file("chat.jinja"),
                          "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
  run_out(sn::testing::bin_dir() + "/supernode gen-model -o " + model + " --chat-template " + dir.file("chat.jinja") +
          " 2>/dev/null");
  return model;
}

inline bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace sn::testing::daemon
