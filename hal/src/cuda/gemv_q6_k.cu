// The GEMV for q6_K weights (gemv.cuh's driver with its traits), in its own
// translation unit so the six weight types compile in parallel.
// Thread safety: see kernels.h.
#include "cuda/gemv.cuh"

namespace sn::hal::cuda {

cudaError_t launch_gemv_q6_k(const GemvArgs& a, cudaStream_t stream) { return gemv::launch<gemv::Q6_K>(a, stream); }

}  // namespace sn::hal::cuda
