# Writes OUT, a C++ file defining plan::embedded_schema() with the text of IN.
file(READ ${IN} content)
set(delim "PLAN_SCHEMA_JSON")
file(WRITE ${OUT} "// Generated from engine/load/base.schema.json by cmake/embed.cmake; do not edit.\n#include <string_view>\nnamespace plan {\nstd::string_view embedded_schema() {\n  static constexpr const char text[] = R\"${delim}(${content})${delim}\";\n  return {text, sizeof(text) - 1};\n}\n}  // namespace plan\n")
