// The tcp and http checks against real sockets and a tiny HTTP responder.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <thread>

#include "check_fixture.h"

using namespace plan;
using plan::test::check;
using plan::test::describe;

namespace {

/// A TCP socket bound on 127.0.0.1 at an ephemeral port; listening or (for refusals) not.
struct Socket {
  int fd = -1;
  int port = 0;
  explicit Socket(bool listening) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    if (listening) REQUIRE(::listen(fd, 16) == 0);
  }
  ~Socket() { ::close(fd); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

/// Answers every HTTP request with a fixed status and body, and records what it was asked.
class HttpResponder {
 public:
  HttpResponder(int status, std::string body) : sock_(true), status_(status), body_(std::move(body)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~HttpResponder() {
    stop_ = true;
    ::shutdown(sock_.fd, SHUT_RDWR);
    thread_.join();
  }
  std::string url(const std::string& path = "/") const { return "http://" + sock_.address() + path; }
  std::string last_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }

 private:
  void serve() {
    while (!stop_) {
      int c = ::accept(sock_.fd, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      size_t need = std::string::npos;
      while (need == std::string::npos || req.size() < need) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
        auto end = req.find("\r\n\r\n");
        if (end != std::string::npos && need == std::string::npos) {
          size_t body = 0;
          auto cl = req.find("Content-Length: ");
          if (cl != std::string::npos) body = std::stoul(req.substr(cl + 16));
          need = end + 4 + body;
        }
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_ = req;
      }
      std::string reply = "HTTP/1.1 " + std::to_string(status_) +
                          " Whatever\r\nContent-Length: " + std::to_string(body_.size()) +
                          "\r\nConnection: close\r\n\r\n" + body_;
      ssize_t ignored = ::write(c, reply.data(), reply.size());
      (void)ignored;
      ::close(c);
    }
  }

  Socket sock_;
  int status_;
  std::string body_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string last_;
};

}  // namespace

TEST_CASE("tcp sees an open port and a refused one", "[checks]") {
  Socket open(true), closed(false);
  auto ok = check("tcp", open.address());
  CHECK(ok.ok);
  CHECK(ok.seen == "port open");

  auto refused = check("tcp", closed.address());
  CHECK_FALSE(refused.ok);
  CHECK(refused.expected == "port open");
  CHECK(refused.seen == "connection refused");

  CHECK(check("tcp", Json{{"address", closed.address()}, {"open", false}}).ok);
  auto still_open = check("tcp", Json{{"address", open.address()}, {"open", false}});
  CHECK_FALSE(still_open.ok);
  CHECK(still_open.expected == "port closed");
  CHECK(still_open.seen == "port open");
}

TEST_CASE("tcp describes itself and rejects a bad address", "[checks]") {
  CHECK(describe("tcp", "127.0.0.3:8080") == "tcp 127.0.0.3:8080");
  CHECK(describe("tcp", Json{{"address", "127.0.0.3:8080"}, {"open", false}}) == "tcp 127.0.0.3:8080 closed");
  auto bad = check("tcp", "localhost");
  CHECK_FALSE(bad.ok);
  CHECK(bad.expected == "valid parameters");
  CHECK(bad.seen == "tcp address must be host:port, not 'localhost'");
}

TEST_CASE("http compares the status and the body", "[checks]") {
  HttpResponder ok(200, "welcome to botbot");
  CHECK(check("http", Json{{"url", ok.url()}}).ok);
  CHECK(check("http", Json{{"url", ok.url()}, {"body_contains", "botbot"}}).ok);
  auto no_text = check("http", Json{{"url", ok.url()}, {"body_contains", "read-only"}});
  CHECK_FALSE(no_text.ok);
  CHECK(no_text.expected == "body containing 'read-only'");
  CHECK(no_text.seen == "status 200 without it (17 bytes)");

  HttpResponder down(503, "maintenance");
  auto r = check("http", Json{{"url", down.url()}});
  CHECK_FALSE(r.ok);
  CHECK(r.expected == "status 200");
  CHECK(r.seen == "503");
  auto listed = check("http", Json{{"url", down.url()}, {"status", Json::array({200, 201, 204})}});
  CHECK(listed.expected == "status 200, 201 or 204");
  CHECK(check("http", Json{{"url", down.url()}, {"status", "503"}}).ok);
}

TEST_CASE("http sends the method, headers and body", "[checks]") {
  HttpResponder srv(405, "");
  auto r = check("http", Json{{"url", srv.url("/submit")},
                              {"method", "post"},
                              {"status", 405},
                              {"headers", {{"Host", "botbot.test"}}},
                              {"body", "hello"}});
  CHECK(r.ok);
  std::string req = srv.last_request();
  CHECK(req.rfind("POST /submit HTTP/1.1\r\n", 0) == 0);
  CHECK(req.find("Host: botbot.test\r\n") != std::string::npos);
  CHECK(req.substr(req.size() - 5) == "hello");
}

TEST_CASE("http reports the transport error when nothing answers", "[checks]") {
  Socket closed(false);
  auto r = check("http", Json{{"url", "http://" + closed.address() + "/"}});
  CHECK_FALSE(r.ok);
  CHECK(r.expected == "status 200");
  CHECK(r.seen == "connection refused");
  CHECK(describe("http", Json{{"url", "http://127.0.0.3/"}, {"method", "POST"}, {"status", 405}}) ==
        "http POST http://127.0.0.3/ status 405");
}
