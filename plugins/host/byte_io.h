// Little-endian byte writer and reader of the plugins' serialized form
// (plugin_host.cpp serialize / deserialize). Errors throw HostError.
#pragma once

#include <stdint.h>
#include <string.h>

#include <string>

#include "plugin_host.h"

namespace mrcnn {
namespace host {

struct Writer {
  uint8_t* p;
  uint8_t* end;
  void bytes(const void* src, size_t n) {
    if ((size_t)(end - p) < n) throw HostError("serialize: buffer too small");
    memcpy(p, src, n);
    p += n;
  }
  void u8(uint8_t v) { bytes(&v, 1); }
  void u16(uint16_t v) {
    uint8_t b[2] = {(uint8_t)(v & 0xff), (uint8_t)(v >> 8)};
    bytes(b, 2);
  }
  void u32(uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v & 0xff), (uint8_t)((v >> 8) & 0xff), (uint8_t)((v >> 16) & 0xff), (uint8_t)(v >> 24)};
    bytes(b, 4);
  }
  void str(const char* s) {
    const size_t n = strlen(s);
    if (n > 0xffff) throw HostError("serialize: name too long");
    u16((uint16_t)n);
    bytes(s, n);
  }
};

struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  std::string op;
  void need(size_t n) {
    if ((size_t)(end - p) < n) throw HostError(op + ": serialized data is truncated (plan file damaged?)");
  }
  uint8_t u8() {
    need(1);
    return *p++;
  }
  uint16_t u16() {
    need(2);
    uint16_t v = (uint16_t)(p[0] | (p[1] << 8));
    p += 2;
    return v;
  }
  uint32_t u32() {
    need(4);
    uint32_t v = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    p += 4;
    return v;
  }
  std::string str() {
    const uint16_t n = u16();
    need(n);
    std::string s((const char*)p, n);
    p += n;
    return s;
  }
};

constexpr uint32_t kMagic = 0x4E43524Du;  // bytes 'M' 'R' 'C' 'N'

inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

}  // namespace host
}  // namespace mrcnn
