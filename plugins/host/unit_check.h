// The few lines of test harness shared by the native unit tests
// (plugins/host/plugin_host_test.cpp, plugins/trt/adapter_test.cpp): CHECK
// counts and reports a failed condition, CHECK_THROWS expects a HostError
// whose message contains a given text. main() prints g_checks / g_failures.
#pragma once

#include <stdio.h>
#include <string.h>

#include <exception>
#include <functional>

#include "plugin_host.h"

namespace {

int g_checks = 0, g_failures = 0;

#define CHECK(cond)                                                      \
  do {                                                                   \
    ++g_checks;                                                          \
    if (!(cond)) {                                                       \
      ++g_failures;                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                    \
  } while (0)

// Expect `fn` to throw HostError whose message contains `needle`.
#define CHECK_THROWS(fn, needle) check_throws([&]() { fn; }, needle, __FILE__, __LINE__, #fn)

inline void check_throws(const std::function<void()>& fn, const char* needle, const char* file, int line,
                         const char* expr) {
  ++g_checks;
  try {
    fn();
  } catch (const mrcnn::host::HostError& e) {
    if (strstr(e.what(), needle) == nullptr) {
      ++g_failures;
      fprintf(stderr, "%s:%d: %s threw '%s', expected a message containing '%s'\n", file, line, expr, e.what(), needle);
    }
    return;
  } catch (const std::exception& e) {
    ++g_failures;
    fprintf(stderr, "%s:%d: %s threw a non-HostError: %s\n", file, line, expr, e.what());
    return;
  }
  ++g_failures;
  fprintf(stderr, "%s:%d: %s did not throw (expected '%s')\n", file, line, expr, needle);
}

}  // namespace
