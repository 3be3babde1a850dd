// `plan schema`: what the step and check types declare, for editors, validators and the README.

#include "app/commands.h"
#include "load/schema.h"
#include "report/reference.h"

namespace plan {

int cmd_schema(const std::string& format, std::ostream& out) {
  if (format == "markdown") {
    out << parameter_reference_markdown();
  } else {
    out << SchemaChecker::published_schema().dump(2) << "\n";
  }
  return 0;
}

}  // namespace plan
