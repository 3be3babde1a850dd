#pragma once
// Transitional: moved to load/loader.h.
#include "load/loader.h"
