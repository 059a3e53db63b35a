// The driver's view of the run-time ISA choice (isa.cpp).
#pragma once
#include "kernel.hpp"

namespace cliprt {

// The scoring kernel of the active ISA (CLIPRT_ISA, set_isa, or the best supported).
ScoreBlockFn active_score_block();

}  // namespace cliprt
