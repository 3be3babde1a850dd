#include "report/diagnostics_out.h"

#include "report/text.h"

namespace plan {

std::vector<FileDiagnostic> collect_diagnostics(const std::string& path, const LoadResult& result) {
  std::vector<FileDiagnostic> out;
  for (const auto& d : result.diags) out.push_back({path, d.mark.line, d.mark.col, d.message});
  // "FILE:LINE:COL: error: MESSAGE" or "FILE: error: MESSAGE", parsed by hand: std::regex recurses
  // per character and a long line (a long --var) would overflow the stack.
  for (const auto& e : result.extra_errors) {
    std::string first = e.substr(0, e.find('\n'));
    size_t sep = first.find(": error: ");
    if (sep == std::string::npos || sep == 0) {
      out.push_back({path, 0, 0, first});
      continue;
    }
    std::string where = first.substr(0, sep), message = first.substr(sep + 9);
    auto number_at_end = [](std::string& text, int& n) {
      size_t colon = text.rfind(':');
      if (colon == std::string::npos || colon + 1 == text.size() || text.size() - colon > 10) return false;
      for (size_t i = colon + 1; i < text.size(); ++i)
        if (text[i] < '0' || text[i] > '9') return false;
      n = std::stoi(text.substr(colon + 1));
      text.resize(colon);
      return true;
    };
    std::string file = where;
    int line = 0, col = 0;
    if (number_at_end(file, col) && number_at_end(file, line) && !file.empty()) {
      out.push_back({file, line, col, message});
    } else {
      out.push_back({where, 0, 0, message});
    }
  }
  return out;
}

std::vector<FileDiagnostic> lint_diagnostics(const std::string& path, const std::vector<LintWarning>& warnings,
                                             const std::string& severity) {
  std::vector<FileDiagnostic> out;
  for (const LintWarning& w : warnings)
    out.push_back({w.file.empty() ? path : w.file, w.mark.line, w.mark.col, w.message, severity, w.id, w.fix, w.step});
  return out;
}

std::string format_lint_text(const std::string& path, const std::string& source,
                             const std::vector<LintWarning>& warnings, const std::string& severity) {
  std::string out;
  for (const LintWarning& w : warnings) {
    const bool shows_secret = w.id == "W006" || w.id == "W008" || !w.file.empty();
    out += format_diagnostics(w.file.empty() ? path : w.file, shows_secret ? "" : source,
                              {{w.mark, "[" + w.id + "] " + w.message}}, severity);
    out += "  fix: " + w.fix + "\n";
  }
  return out;
}

std::string format_diagnostics_json(const std::vector<FileDiagnostic>& diags) {
  Json a = Json::array();
  for (const auto& d : diags) {
    Json o = {{"file", sanitize_utf8(d.file)},
              {"line", d.line},
              {"col", d.col},
              {"severity", d.severity},
              {"message", sanitize_utf8(d.message)}};
    if (!d.id.empty()) {
      o["id"] = d.id;
      o["fix"] = sanitize_utf8(d.fix);
      o["step"] = d.step.empty() ? Json(nullptr) : Json(d.step);
    }
    a.push_back(std::move(o));
  }
  return a.dump(2) + "\n";
}

namespace {

std::string escape_data(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '%')
      out += "%25";
    else if (c == '\r')
      out += "%0D";
    else if (c == '\n')
      out += "%0A";
    else
      out += c;
  }
  return out;
}

std::string escape_property(const std::string& s) {
  std::string out;
  for (char c : escape_data(s)) {
    if (c == ':')
      out += "%3A";
    else if (c == ',')
      out += "%2C";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string format_diagnostics_github(const std::vector<FileDiagnostic>& diags) {
  std::string out;
  for (const auto& d : diags) {
    out += "::" + d.severity + " file=" + escape_property(d.file);
    if (d.line > 0) out += ",line=" + std::to_string(d.line) + ",col=" + std::to_string(d.col);
    if (!d.id.empty()) out += ",title=" + escape_property(d.id);
    out += "::" + escape_data(d.message) + "\n";
  }
  return out;
}

}  // namespace plan
