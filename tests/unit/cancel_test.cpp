// CancelToken's waits: what every poll in the engine pauses with, so that Ctrl-C or --fail-fast
// ends a pause at once instead of after it.

#include "run/cancel.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

using namespace plan;
using namespace std::chrono_literals;

TEST_CASE("a wait that nobody cancels ends at its time and says it was not cancelled", "[cancel]") {
  CancelToken token;
  CHECK_FALSE(token.wait_for(1ms));
  CHECK_FALSE(token.wait_until(Clock::now()));
  CHECK_FALSE(token.cancelled());
}

TEST_CASE("a cancel from another thread ends a long wait, also one without an end", "[cancel]") {
  // Were the wake-up lost, these waits would last five minutes and the test would time out.
  for (bool endless : {false, true}) {
    CAPTURE(endless);
    CancelToken token;
    std::thread canceller([token]() mutable {
      std::this_thread::sleep_for(20ms);
      token.cancel();
    });
    bool cancelled = endless ? token.wait_until(Clock::time_point::max()) : token.wait_for(5min);
    canceller.join();
    CHECK(cancelled);
  }
}

TEST_CASE("a parent's cancel ends its child's wait, and a child's cancel leaves the parent alone", "[cancel]") {
  CancelToken parent;
  CancelToken child = parent.child();
  CancelToken sibling = parent.child();
  child.cancel();
  CHECK(child.wait_for(5min));
  CHECK_FALSE(parent.cancelled());
  CHECK_FALSE(sibling.wait_for(1ms));

  std::thread canceller([parent]() mutable {
    std::this_thread::sleep_for(20ms);
    parent.cancel();
  });
  CHECK(sibling.wait_for(5min));
  canceller.join();
  CHECK(parent.cancelled());
}

TEST_CASE("a wait on a token already cancelled returns at once", "[cancel]") {
  CancelToken token;
  token.cancel();
  CHECK(token.wait_for(5min));
  CHECK(token.wait_until(Clock::time_point::max()));
}
