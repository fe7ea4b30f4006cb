// The GEMV for f16 weights (gemv.cuh's driver with its traits), in its own
// translation unit so the six weight types compile in parallel.
// Thread safety: see kernels.h.
#include "cuda/gemv.cuh"

namespace sn::hal::cuda {

cudaError_t launch_gemv_f16(const GemvArgs& a, cudaStream_t stream) { return gemv::launch<gemv::F16>(a, stream); }

}  // namespace sn::hal::cuda
