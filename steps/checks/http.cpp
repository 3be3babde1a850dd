// Check `http`: a request answered with an expected status (and optionally a body containing text).
//   - http: { url: "http://127.0.0.3/", method: POST, status: [405], body_contains: "read-only",
//             headers: { Host: botbot.test }, body: "x", timeout: 5s, on: new }
// From this machine through libcurl; from another host through its curl command.

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "../params.h"
#include "run/registry.h"
#include "util/shared_library.h"

namespace plan {
namespace {

constexpr Millis kDefaultTimeout{10000};
constexpr size_t kBodyCap = 1 << 20;

struct HttpParams {
  std::string url;
  std::string method = "GET";
  std::vector<int> status{200};
  std::string body_contains;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<std::string> body;
  Millis timeout = kDefaultTimeout;
};

HttpParams parse(const Json& p) {
  HttpParams h;
  if (p.is_object()) {
    h.url = params::text(p, "url", "");
    h.method = params::text(p, "method", "GET");
    std::transform(h.method.begin(), h.method.end(), h.method.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    h.status = params::int_list(p, "status", {200});
    h.body_contains = params::text(p, "body_contains", "");
    if (p.contains("headers") && !p["headers"].is_null()) {
      if (!p["headers"].is_object()) throw params::BadParam("http 'headers' must be a map of NAME: value", "headers");
      for (const auto& [k, v] : p["headers"].items()) h.headers.emplace_back(k, params::text(v));
    }
    if (p.contains("body") && !p["body"].is_null()) h.body = params::text(p, "body", "");
    h.timeout = params::duration(p, "timeout", kDefaultTimeout);
  } else {
    throw params::BadParam("http takes { url: ... }");
  }
  if (h.url.empty()) throw params::BadParam("http needs a 'url'", "url");
  if (h.status.empty()) throw params::BadParam("http 'status' lists no status", "status");
  return h;
}

const ParamTable kTable{
    .title = "http check",
    .description =
        "An HTTP request answered with an expected status (and optionally a body containing some "
        "text): from this machine through libcurl, from another host through its curl command.",
    .params =
        {
            {.name = "url", .required = true, .description = "The URL requested.", .example = "http://127.0.0.3/"},
            {.name = "method",
             .default_value = "GET",
             .description = "The request method (GET, HEAD, POST, ...).",
             .example = "POST"},
            {.name = "status",
             .kind = ParamKind::IntList,
             .default_value = Json::array({200}),
             .description = "The status, or the list of statuses, that make the check hold.",
             .example = Json::array({200, 301})},
            {.name = "body_contains", .description = "Text the response body must contain.", .example = "read-only"},
            {.name = "headers",
             .kind = ParamKind::StringMap,
             .description = "Request headers, NAME: value.",
             .example = Json{{"Host", "botbot.test"}}},
            {.name = "body", .description = "The request body.", .example = "{\"ping\": true}"},
            {.name = "timeout",
             .kind = ParamKind::Duration,
             .default_value = "10s",
             .description = "How long the request may take.",
             .example = "5s"},
        },
};

std::string expected_status(const HttpParams& h) {
  std::string s = "status ";
  for (size_t i = 0; i < h.status.size(); ++i) {
    if (i) s += i + 1 == h.status.size() ? " or " : ", ";
    s += std::to_string(h.status[i]);
  }
  return s;
}

struct Reply {
  std::string error;  // transport failure, empty when a status came back
  long status = 0;
  std::string body;
};

size_t collect(char* data, size_t size, size_t n, void* user) {
  auto* body = static_cast<std::string*>(user);
  size_t len = size * n;
  if (body->size() < kBodyCap) body->append(data, std::min(len, kBodyCap - body->size()));
  return len;
}

int progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  // Non-zero aborts the transfer: that is how cancellation reaches a request in flight.
  return static_cast<const CancelToken*>(user)->cancelled() ? 1 : 0;
}

/// libcurl, opened the first time a check asks for a URL from this machine rather than linked
/// (util/shared_library.h says why).
struct Curl {
  decltype(&curl_global_init) global_init = nullptr;
  decltype(&curl_easy_init) easy_init = nullptr;
  decltype(&curl_easy_setopt) easy_setopt = nullptr;
  decltype(&curl_easy_perform) easy_perform = nullptr;
  decltype(&curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&curl_easy_strerror) easy_strerror = nullptr;
  decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&curl_slist_append) slist_append = nullptr;
  decltype(&curl_slist_free_all) slist_free_all = nullptr;
  std::string error;  // why it cannot be used; empty when every function was found

  static const Curl& get() {
    static const Curl curl = load();
    return curl;
  }

 private:
  static Curl load() {
    static SharedLibrary lib("libcurl.so.4", "libcurl (Debian: libcurl4)");
    Curl c;
    lib.bind(c.global_init, "curl_global_init");
    lib.bind(c.easy_init, "curl_easy_init");
    lib.bind(c.easy_setopt, "curl_easy_setopt");
    lib.bind(c.easy_perform, "curl_easy_perform");
    lib.bind(c.easy_getinfo, "curl_easy_getinfo");
    lib.bind(c.easy_strerror, "curl_easy_strerror");
    lib.bind(c.easy_cleanup, "curl_easy_cleanup");
    lib.bind(c.slist_append, "curl_slist_append");
    lib.bind(c.slist_free_all, "curl_slist_free_all");
    c.error = lib.error();
    if (c.error.empty()) c.global_init(CURL_GLOBAL_DEFAULT);  // once, before any other thread uses it
    return c;
  }
};

Reply request_local(const HttpParams& h, Deadline deadline, const CancelToken& cancel) {
  const Curl& curl = Curl::get();
  Reply r;
  if (!curl.error.empty()) {
    r.error = curl.error;
    return r;
  }
  CURL* c = curl.easy_init();
  if (!c) {
    r.error = "cannot initialise libcurl";
    return r;
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* hdrs = nullptr;
  for (const auto& [k, v] : h.headers) hdrs = curl.slist_append(hdrs, (k + ": " + v).c_str());
  long timeout_ms = std::max<long>(1, static_cast<long>(params::bounded(h.timeout, deadline).count()));
  curl.easy_setopt(c, CURLOPT_URL, h.url.c_str());
  curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // we run on many threads; no SIGALRM games
  curl.easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl.easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
  curl.easy_setopt(c, CURLOPT_XFERINFODATA, &cancel);
  curl.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  if (hdrs) curl.easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  if (h.method == "HEAD") {
    curl.easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (h.method != "GET" || h.body) {
    curl.easy_setopt(c, CURLOPT_CUSTOMREQUEST, h.method.c_str());
  }
  if (h.body) {
    curl.easy_setopt(c, CURLOPT_POSTFIELDS, h.body->data());
    curl.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(h.body->size()));
  }
  CURLcode rc = curl.easy_perform(c);
  if (rc == CURLE_OK) {
    curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
    r.error = "cancelled";
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    r.error = "no answer within " + format_duration(Millis(timeout_ms));
  } else {
    // curl's own text carries timings ("after 0 ms") that make messages differ run to run.
    long os_errno = 0;
    curl.easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
    if (rc == CURLE_COULDNT_CONNECT && os_errno == ECONNREFUSED) {
      r.error = "connection refused";
    } else if (rc == CURLE_COULDNT_CONNECT && os_errno != 0) {
      r.error = std::strerror(static_cast<int>(os_errno));
      if (!r.error.empty()) r.error[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(r.error[0])));
    } else {
      r.error = errbuf[0] ? errbuf : curl.easy_strerror(rc);
    }
  }
  curl.slist_free_all(hdrs);
  curl.easy_cleanup(c);
  return r;
}

Reply request_remote(const HttpParams& h, HostConnection& host, Deadline deadline, const CancelToken& cancel) {
  Reply r;
  long long secs = std::max<long long>(1, (h.timeout.count() + 999) / 1000);
  CommandSpec spec;
  spec.argv = {"curl", "-sS", "-X", h.method, "--max-time", std::to_string(secs), "-w", "\n%{http_code}"};
  for (const auto& [k, v] : h.headers) {
    spec.argv.push_back("-H");
    spec.argv.push_back(k + ": " + v);
  }
  if (h.body) {
    spec.argv.push_back("--data-binary");
    spec.argv.push_back("@-");
    spec.stdin_data = *h.body;
  }
  spec.argv.push_back(h.url);
  auto res = host.run(spec, deadline, cancel);
  if (!res.started) {
    r.error = "cannot run curl on " + host.name() + ": " + res.error;
  } else if (res.signal != 0 || res.exit_code != 0 || res.timed_out || res.cancelled) {
    std::string last = params::last_lines(res.err, 1);
    r.error = last.empty() ? describe_exit(res) : last;
  } else {
    auto nl = res.out.rfind('\n');
    r.body = nl == std::string::npos ? "" : res.out.substr(0, nl);
    r.status = std::atol(res.out.c_str() + (nl == std::string::npos ? 0 : nl + 1));
  }
  return r;
}

class HttpCheck : public CheckType {
 public:
  std::string name() const override { return "http"; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }

  std::string describe(const Json& p) const override {
    try {
      HttpParams h = parse(p);
      std::string s = "http " + h.method + " " + h.url;
      if (h.status != std::vector<int>{200}) s += " " + expected_status(h);
      if (!h.body_contains.empty()) s += " body contains '" + h.body_contains + "'";
      return s;
    } catch (const std::exception&) {
      return "http " + p.dump();
    }
  }

  CheckResult evaluate(const Json& p, HostConnection& host, CheckContext& ctx) const override {
    HttpParams h = parse(p);
    Reply r = host.is_local() ? request_local(h, ctx.deadline, ctx.cancel)
                              : request_remote(h, host, ctx.deadline, ctx.cancel);
    if (!r.error.empty()) return CheckResult::failed(expected_status(h), r.error);
    if (std::find(h.status.begin(), h.status.end(), static_cast<int>(r.status)) == h.status.end())
      return CheckResult::failed(expected_status(h), std::to_string(r.status));
    if (!h.body_contains.empty() && r.body.find(h.body_contains) == std::string::npos)
      return CheckResult::failed(
          "body containing '" + h.body_contains + "'",
          "status " + std::to_string(r.status) + " without it (" + std::to_string(r.body.size()) + " bytes)");
    return CheckResult::pass("status " + std::to_string(r.status));
  }
};

PLAN_REGISTER_CHECK(HttpCheck);

}  // namespace
}  // namespace plan
