// The driver's view of the run-time ISA choice (isa.cpp).
#pragma once
#include "kernel.hpp"

namespace cliprt {

struct ActiveKernel {
  ScoreBlockFn score_block;
  // Whether it reads QuantQueries (int8 rows by dot-product instructions); the driver
  // quantizes queries only then.
  bool uses_quant;
};

// The scoring kernel of the active ISA (CLIPRT_ISA, set_isa, or the best supported).
ActiveKernel active_kernel();

}  // namespace cliprt
