#include "report/diagnostics_out.h"

#include <regex>

#include "report/text.h"

namespace plan {

std::vector<FileDiagnostic> collect_diagnostics(const std::string& path, const LoadResult& result) {
  std::vector<FileDiagnostic> out;
  for (const auto& d : result.diags) out.push_back({path, d.mark.line, d.mark.col, d.message});
  static const std::regex with_pos(R"(^(.*?):(\d+):(\d+): error: (.*)$)");
  static const std::regex without_pos(R"(^(.*?): error: (.*)$)");
  for (const auto& e : result.extra_errors) {
    std::string first = e.substr(0, e.find('\n'));
    std::smatch m;
    if (std::regex_match(first, m, with_pos)) {
      out.push_back({m[1], std::stoi(m[2]), std::stoi(m[3]), m[4]});
    } else if (std::regex_match(first, m, without_pos)) {
      out.push_back({m[1], 0, 0, m[2]});
    } else {
      out.push_back({path, 0, 0, first});
    }
  }
  return out;
}

std::string format_diagnostics_json(const std::vector<FileDiagnostic>& diags) {
  Json a = Json::array();
  for (const auto& d : diags)
    a.push_back({{"file", sanitize_utf8(d.file)}, {"line", d.line}, {"col", d.col}, {"message", sanitize_utf8(d.message)}});
  return a.dump(2) + "\n";
}

namespace {

std::string escape_data(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '%') out += "%25";
    else if (c == '\r') out += "%0D";
    else if (c == '\n') out += "%0A";
    else out += c;
  }
  return out;
}

std::string escape_property(const std::string& s) {
  std::string out;
  for (char c : escape_data(s)) {
    if (c == ':') out += "%3A";
    else if (c == ',') out += "%2C";
    else out += c;
  }
  return out;
}

}  // namespace

std::string format_diagnostics_github(const std::vector<FileDiagnostic>& diags) {
  std::string out;
  for (const auto& d : diags) {
    out += "::error file=" + escape_property(d.file);
    if (d.line > 0) out += ",line=" + std::to_string(d.line) + ",col=" + std::to_string(d.col);
    out += "::" + escape_data(d.message) + "\n";
  }
  return out;
}

}  // namespace plan
