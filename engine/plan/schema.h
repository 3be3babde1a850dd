#pragma once
// Transitional: moved to load/schema.h.
#include "load/schema.h"
