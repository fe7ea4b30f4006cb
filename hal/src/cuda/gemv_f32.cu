// The GEMV for f32 weights (gemv.cuh's driver with its traits), in its own
// translation unit so the six weight types compile in parallel.
// Thread safety: see kernels.h.
#include "cuda/gemv.cuh"

namespace sn::hal::cuda {

cudaError_t launch_gemv_f32(const GemvArgs& a, cudaStream_t stream) { return gemv::launch<gemv::F32>(a, stream); }

}  // namespace sn::hal::cuda
