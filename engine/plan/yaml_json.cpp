#include "plan/yaml_json.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

namespace plan {
namespace {

Mark to_mark(const YAML::Mark& m) { return {m.line + 1, m.column + 1}; }

/// Stops the parse: the tree built so far cannot be trusted.
struct Abort {
  Mark mark;
  std::string message;
};

bool all_of(const std::string& s, size_t from, bool (*pred)(char)) {
  if (from >= s.size()) return false;
  for (size_t i = from; i < s.size(); ++i) {
    if (!pred(s[i])) return false;
  }
  return true;
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_octal(char c) { return c >= '0' && c <= '7'; }

/// YAML 1.2 core float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool is_float(const std::string& s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t int_digits = 0, frac_digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++int_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && is_digit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

class Builder : public YAML::EventHandler {
 public:
  Builder(std::vector<Diagnostic>& diags, StepSink* sink) : diags_(diags), sink_(sink) {}

  int documents = 0;
  Mark second_document;
  bool have_root = false;
  Json root;
  MarkNode root_marks;
  size_t streamed = 0;      // elements given to the sink
  bool keys_after = false;  // a top-level key followed them

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents == 2) second_document = to_mark(mark);
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (expecting_key()) throw Abort{to_mark(mark), "map keys must be non-empty strings"};
    finish(Json(nullptr), MarkNode{to_mark(mark), {}, {}}, 1, anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (expecting_key()) throw Abort{to_mark(mark), "aliases cannot be map keys"};
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw Abort{to_mark(mark), "unknown alias"};
    // Every alias is a full copy; the budget keeps "billion laughs" documents from exhausting memory.
    alias_nodes_ += it->second.count;
    if (alias_nodes_ > kMaxAliasNodes) {
      throw Abort{to_mark(mark), "aliases expand to more than " + std::to_string(kMaxAliasNodes) + " values"};
    }
    MarkNode m = it->second.marks;
    m.mark = to_mark(mark);
    finish(Json(it->second.value), std::move(m), it->second.count, 0);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (expecting_key()) {
      Frame& f = stack_.back();
      if (stack_.size() == 1 && streamed > 0) keys_after = true;
      f.have_key = true;
      f.key = value;
      f.key_mark = to_mark(mark);
      f.key_is_merge = (tag == "?" && value == "<<");
      return;
    }
    Json v;
    if (tag == "?" || tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
        tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
      v = yaml_plain_scalar(value);
    } else {
      v = value;  // quoted, !!str or any other tag: text as written
    }
    finish(std::move(v), MarkNode{to_mark(mark), {}, {}}, 1, anchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, anchor, false);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, anchor, true);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    bool is_map = false;
    Json value;
    MarkNode marks;
    // Maps: members in file order; sorted by key at the end to match nlohmann's object order.
    // (A vector, not a std::map: one allocation less per member, which shows on big plans.)
    std::vector<std::pair<std::string, MarkNode>> member_marks;
    std::set<std::string> merged;  // keys that came from "<<" (explicit keys override)
    bool have_key = false;
    bool key_is_merge = false;
    std::string key;
    Mark key_mark;
    YAML::anchor_t anchor = 0;
    size_t count = 1;
  };
  struct Anchored {
    Json value;
    MarkNode marks;
    size_t count = 0;
  };

  bool expecting_key() const { return !stack_.empty() && stack_.back().is_map && !stack_.back().have_key; }

  void open(const YAML::Mark& mark, YAML::anchor_t anchor, bool is_map) {
    if (expecting_key()) throw Abort{to_mark(mark), "map keys must be strings"};
    if (static_cast<int>(stack_.size()) >= kMaxYamlDepth) {
      throw Abort{to_mark(mark), "nesting deeper than " + std::to_string(kMaxYamlDepth) + " levels"};
    }
    Frame f;
    f.is_map = is_map;
    f.value = is_map ? Json::object() : Json::array();
    f.marks.mark = to_mark(mark);
    f.anchor = anchor;
    stack_.push_back(std::move(f));
  }

  void close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.is_map) {
      std::sort(f.member_marks.begin(), f.member_marks.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      f.marks.kids.reserve(f.member_marks.size());
      for (auto& km : f.member_marks) f.marks.kids.push_back(std::move(km.second));
    } else {
      // A list's positions and values grew by doubling: trimmed, a big plan's lists of short
      // lists (needs, commands) keep no spare room.
      f.marks.kids.shrink_to_fit();
      f.value.get_ref<Json::array_t&>().shrink_to_fit();
    }
    finish(std::move(f.value), std::move(f.marks), f.count, f.anchor);
  }

  void finish(Json v, MarkNode m, size_t count, YAML::anchor_t anchor) {
    if (anchor != 0) anchors_[anchor] = Anchored{v, m, count};
    if (stack_.empty()) {
      have_root = true;
      root = std::move(v);
      root_marks = std::move(m);
      return;
    }
    if (streams_step()) {
      if (streamed == 0) sink_->top(stack_[0].value, marks_so_far(stack_[0]));
      sink_->step(streamed++, v, m);
      return;
    }
    Frame& f = stack_.back();
    f.count += count;
    if (!f.is_map) {
      f.value.push_back(std::move(v));
      f.marks.kids.push_back(std::move(m));
      return;
    }
    f.have_key = false;
    if (f.key_is_merge && (v.is_object() || v.is_array())) {
      merge(f, v, m);
      return;
    }
    m.key_mark = f.key_mark;
    if (f.value.contains(f.key)) {
      auto it =
          std::find_if(f.member_marks.begin(), f.member_marks.end(), [&](const auto& km) { return km.first == f.key; });
      if (f.merged.erase(f.key)) {  // an explicit key overrides a merged one
        f.value[f.key] = std::move(v);
        it->second = std::move(m);
        return;
      }
      diags_.push_back({f.key_mark, "duplicate key '" + f.key + "' (first at line " +
                                        std::to_string(it->second.key_mark.line) + ")"});
      return;
    }
    f.value[f.key] = std::move(v);
    f.member_marks.emplace_back(f.key, std::move(m));
  }

  /// "<<: *base" or "<<: [*a, *b]": copies keys the map does not have yet (YAML merge keys).
  void merge(Frame& f, const Json& v, const MarkNode& m) {
    auto merge_one = [&](const Json& src, const MarkNode& src_marks) {
      if (!src.is_object()) {
        diags_.push_back({src_marks.mark, "'<<' merges only maps"});
        return;
      }
      size_t i = 0;
      for (auto it = src.begin(); it != src.end(); ++it, ++i) {
        if (f.value.contains(it.key())) continue;
        f.value[it.key()] = it.value();
        MarkNode km = i < src_marks.kids.size() ? src_marks.kids[i] : MarkNode{src_marks.mark, {}, {}};
        f.member_marks.emplace_back(it.key(), std::move(km));
        f.merged.insert(it.key());
      }
    };
    if (v.is_object()) {
      merge_one(v, m);
    } else {
      for (size_t i = 0; i < v.size(); ++i) merge_one(v[i], i < m.kids.size() ? m.kids[i] : m);
    }
  }

  /// Whether the value just completed is an element of the first, plain top-level `steps` list.
  bool streams_step() const {
    if (!sink_ || stack_.size() != 2) return false;
    const Frame& root_frame = stack_[0];
    const Frame& list = stack_[1];
    return root_frame.is_map && root_frame.have_key && !root_frame.key_is_merge && root_frame.key == "steps" &&
           !root_frame.value.contains("steps") && !list.is_map && list.anchor == 0;
  }

  /// A map's positions as read so far, in the order of its (sorted) JSON keys.
  static MarkNode marks_so_far(const Frame& f) {
    MarkNode m;
    m.mark = f.marks.mark;
    std::vector<std::pair<std::string, MarkNode>> members = f.member_marks;
    std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& km : members) m.kids.push_back(std::move(km.second));
    return m;
  }

  std::vector<Diagnostic>& diags_;
  StepSink* sink_ = nullptr;
  std::vector<Frame> stack_;
  std::unordered_map<YAML::anchor_t, Anchored> anchors_;
  size_t alias_nodes_ = 0;
};

}  // namespace

Json yaml_plain_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  size_t sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (all_of(s, sign, is_digit)) {
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    const char* e = s.data() + s.size();
    int64_t i = 0;
    if (auto r = std::from_chars(b, e, i); r.ec == std::errc() && r.ptr == e) return i;
    uint64_t u = 0;
    if (auto r = std::from_chars(b, e, u); r.ec == std::errc() && r.ptr == e) return u;
    return std::strtod(s.c_str(), nullptr);
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    bool hex = s[1] == 'x';
    uint64_t u = 0;
    if (all_of(s, 2, hex ? is_hex : is_octal)) {
      auto r = std::from_chars(s.data() + 2, s.data() + s.size(), u, hex ? 16 : 8);
      if (r.ec == std::errc()) {
        if (u <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(u);
        return u;
      }
    }
    return s;
  }
  if (is_float(s)) return std::strtod(s.c_str(), nullptr);
  return s;
}

size_t invalid_utf8_at(const std::string& text) {
  size_t i = 0, n = text.size();
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  while (i < n) {
    unsigned char c = byte(i);
    size_t len = c < 0x80                   ? 1
                 : (c >= 0xC2 && c <= 0xDF) ? 2
                 : (c >= 0xE0 && c <= 0xEF) ? 3
                 : (c >= 0xF0 && c <= 0xF4) ? 4
                                            : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (byte(i + k) & 0xC0) == 0x80;
    if (ok && len >= 3) {
      unsigned char c1 = byte(i + 1);
      if (c == 0xE0)
        ok = c1 >= 0xA0;  // overlong
      else if (c == 0xED)
        ok = c1 < 0xA0;  // UTF-16 surrogate
      else if (c == 0xF0)
        ok = c1 >= 0x90;  // overlong
      else if (c == 0xF4)
        ok = c1 < 0x90;  // above U+10FFFF
    }
    if (!ok) return i;
    i += len;
  }
  return std::string::npos;
}

YamlDoc parse_yaml(const std::string& text, std::vector<Diagnostic>& diags, StepSink* sink) {
  YamlDoc doc;
  if (size_t bad = invalid_utf8_at(text); bad != std::string::npos) {
    // Refused before parsing: every value would otherwise reach JSON, which throws on it.
    Mark m;
    m.line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(bad), '\n'));
    size_t bol = bad == 0 ? std::string::npos : text.rfind('\n', bad - 1);
    m.col = static_cast<int>(bad - (bol == std::string::npos ? 0 : bol + 1)) + 1;
    static const char* digits = "0123456789ABCDEF";
    unsigned char c = static_cast<unsigned char>(text[bad]);
    std::string message = "invalid UTF-8 (byte 0x";
    message += digits[c >> 4];
    message += digits[c & 0xF];
    message += "); save the file as UTF-8";
    Diagnostic& d = diags.emplace_back();
    d.mark = m;
    d.message = std::move(message);
    doc.value = nullptr;
    return doc;
  }
  std::vector<Diagnostic> local;
  Builder b(local, sink);
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    if (!parser.HandleNextDocument(b) || !b.have_root) {
      doc.empty = true;
      return doc;
    }
    // Only the start of a second document is needed to refuse it; do not build it.
    if (b.documents < 2 && parser.HandleNextDocument(b)) {
    }
    if (b.documents >= 2) {
      diags.push_back({b.second_document, "expected a single YAML document, found more than one"});
      return doc;
    }
  } catch (const Abort& a) {
    diags.push_back({a.mark, a.message});
    return doc;
  } catch (const YAML::Exception& e) {
    diags.push_back({to_mark(e.mark), "invalid YAML: " + e.msg});
    return doc;
  }
  diags.insert(diags.end(), local.begin(), local.end());
  doc.value = std::move(b.root);
  doc.marks = std::move(b.root_marks);
  doc.streamed_steps = b.streamed;
  doc.keys_after_steps = b.keys_after;
  return doc;
}

const MarkNode* marks_at(const Json& root, const MarkNode& marks, const JsonPath& path) {
  const Json* j = &root;
  const MarkNode* m = &marks;
  for (const std::string& tok : path) {
    if (j->is_object()) {
      auto it = j->find(tok);
      if (it == j->end()) break;
      auto idx = static_cast<size_t>(std::distance(j->begin(), it));
      if (idx >= m->kids.size()) break;
      j = &*it;
      m = &m->kids[idx];
    } else if (j->is_array()) {
      size_t idx = 0;
      auto r = std::from_chars(tok.data(), tok.data() + tok.size(), idx);
      if (r.ec != std::errc() || idx >= j->size() || idx >= m->kids.size()) break;
      j = &(*j)[idx];
      m = &m->kids[idx];
    } else {
      break;
    }
  }
  return m;
}

Mark mark_of(const Json& root, const MarkNode& marks, const JsonPath& path) {
  return marks_at(root, marks, path)->mark;
}

Mark key_mark_of(const Json& root, const MarkNode& marks, const JsonPath& path) {
  const MarkNode* m = marks_at(root, marks, path);
  return m->key_mark.line > 0 ? m->key_mark : m->mark;
}

}  // namespace plan
