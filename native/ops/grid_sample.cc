// Fused bilinear grid sampling for TensorFlow's CPU runtime (rass's native backend): torch's
// grid_sample(mode='bilinear', padding_mode='zeros', align_corners=False), differentiable in
// both the map and the coordinates, as registry/heads/common/sampling.ts computes it with tfjs
// ops.
//
// Why: composed from tfjs ops one sampling call is about 50 ops forward and 80 backward (corner
// indices, bounds masks, clips, casts, four gathers, a scatter), each over a vector of points.
// Mask2Former's criterion samples every layer's masks and its pixel decoder samples every level
// in every layer: a few thousand of the head step's ~8,000 graph nodes, each paying TensorFlow's
// per-node cost on vectors of a thousand values. Here it is one kernel each way.
//
//   RassGridSample(input [N, H, W, C], grid [N, P, 2] (x, y in [-1, 1])) -> out [N, P, C]
//   RassGridSampleGrad(dy [N, P, C], input, grid) -> dinput [N, H, W, C], dgrid [N, P, 2]
//
// Corner arithmetic follows the composite op by op (same float rounding): x = (gx + 1) W/2 - 0.5,
// x0 = floor(x), fx = x - x0; a corner outside the map reads the clipped pixel with weight 0.
// The backward's scatter into dinput runs one image at a time (corners in order, points in
// order), so sums do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("RassGridSample")
    .Input("input: float")
    .Input("grid: float")
    .Output("out: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle input, grid;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &input));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &grid));
      c->set_output(0, c->MakeShape({c->Dim(input, 0), c->Dim(grid, 1), c->Dim(input, 3)}));
      return tsl::OkStatus();
    });

REGISTER_OP("RassGridSampleGrad")
    .Input("dy: float")
    .Input("input: float")
    .Input("grid: float")
    .Output("dinput: float")
    .Output("dgrid: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      return tsl::OkStatus();
    });

namespace {

struct Corners {
  int64_t row[4];  // flat pixel index within the image (clipped)
  float w[4];      // bilinear weight, 0 for a corner outside the map
  float inside[4];
  float fx, fy;
};

// Corners in the composite's order: (x0, y0), (x1, y0), (x0, y1), (x1, y1).
inline Corners CornersOf(float gx, float gy, int64_t h, int64_t w) {
  Corners k;
  const float x = (gx + 1.0f) * (static_cast<float>(w) / 2.0f) - 0.5f;
  const float y = (gy + 1.0f) * (static_cast<float>(h) / 2.0f) - 0.5f;
  const float x0 = std::floor(x), y0 = std::floor(y);
  k.fx = x - x0;
  k.fy = y - y0;
  const float wMax = static_cast<float>(w - 1), hMax = static_cast<float>(h - 1);
  for (int c = 0; c < 4; ++c) {
    const int dx = c & 1, dy = c >> 1;
    const float cx = dx ? x0 + 1.0f : x0;
    const float cy = dy ? y0 + 1.0f : y0;
    const bool ok = cx >= 0.0f && cx <= wMax && cy >= 0.0f && cy <= hMax;
    k.inside[c] = ok ? 1.0f : 0.0f;
    const int64_t ix = static_cast<int64_t>(std::min(std::max(cx, 0.0f), wMax));
    const int64_t iy = static_cast<int64_t>(std::min(std::max(cy, 0.0f), hMax));
    k.row[c] = iy * w + ix;
    const float wx = dx ? k.fx : 1.0f - k.fx;
    const float wy = dy ? k.fy : 1.0f - k.fy;
    k.w[c] = wx * wy * k.inside[c];
  }
  return k;
}

tsl::Status CheckShapes(const Tensor& input, const Tensor& grid) {
  if (input.dims() != 4) return tsl::errors::InvalidArgument("RassGridSample: input must be [N, H, W, C], got ", input.shape().DebugString());
  if (grid.dims() != 3 || grid.dim_size(2) != 2 || grid.dim_size(0) != input.dim_size(0))
    return tsl::errors::InvalidArgument("RassGridSample: grid must be [N, P, 2] with the input's N, got ", grid.shape().DebugString(), " for input ", input.shape().DebugString());
  return tsl::OkStatus();
}

class RassGridSampleOp : public OpKernel {
 public:
  explicit RassGridSampleOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& input = ctx->input(0);
    const Tensor& grid = ctx->input(1);
    OP_REQUIRES_OK(ctx, CheckShapes(input, grid));
    const int64_t n = input.dim_size(0), h = input.dim_size(1), w = input.dim_size(2), c = input.dim_size(3), p = grid.dim_size(1);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n, p, c}), &out));
    if (n * p * c == 0) return;
    OP_REQUIRES(ctx, h > 0 && w > 0, tsl::errors::InvalidArgument("RassGridSample: an empty map cannot be sampled"));
    const float* in = input.flat<float>().data();
    const float* g = grid.flat<float>().data();
    float* o = out->flat<float>().data();
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, n * p, 40 + 8 * c, [&](int64_t begin, int64_t end) {
      for (int64_t q = begin; q < end; ++q) {
        const Corners k = CornersOf(g[2 * q], g[2 * q + 1], h, w);
        const float* img = in + (q / p) * h * w * c;
        const float *v0 = img + k.row[0] * c, *v1 = img + k.row[1] * c, *v2 = img + k.row[2] * c, *v3 = img + k.row[3] * c;
        float* dst = o + q * c;
        for (int64_t j = 0; j < c; ++j) dst[j] = v0[j] * k.w[0] + v1[j] * k.w[1] + v2[j] * k.w[2] + v3[j] * k.w[3];
      }
    });
  }
};

class RassGridSampleGradOp : public OpKernel {
 public:
  explicit RassGridSampleGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& input = ctx->input(1);
    const Tensor& grid = ctx->input(2);
    OP_REQUIRES_OK(ctx, CheckShapes(input, grid));
    const int64_t n = input.dim_size(0), h = input.dim_size(1), w = input.dim_size(2), c = input.dim_size(3), p = grid.dim_size(1);
    OP_REQUIRES(ctx, dy.NumElements() == n * p * c, tsl::errors::InvalidArgument("RassGridSampleGrad: dy has ", dy.NumElements(), " values for ", n, " x ", p, " points of ", c));
    Tensor *dinput = nullptr, *dgrid = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, input.shape(), &dinput));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, grid.shape(), &dgrid));
    dinput->flat<float>().setZero();
    dgrid->flat<float>().setZero();
    if (n * p * c == 0 || h == 0 || w == 0) return;
    const float* d = dy.flat<float>().data();
    const float* in = input.flat<float>().data();
    const float* g = grid.flat<float>().data();
    float* di = dinput->flat<float>().data();
    float* dg = dgrid->flat<float>().data();
    const float halfW = static_cast<float>(w) / 2.0f, halfH = static_cast<float>(h) / 2.0f;
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    // d grid: per point, independent
    tensorflow::Shard(workers->num_threads, workers->workers, n * p, 40 + 8 * c, [&](int64_t begin, int64_t end) {
      for (int64_t q = begin; q < end; ++q) {
        const Corners k = CornersOf(g[2 * q], g[2 * q + 1], h, w);
        const float* img = in + (q / p) * h * w * c;
        const float* dq = d + q * c;
        float v[4];
        for (int cr = 0; cr < 4; ++cr) {
          const float* px = img + k.row[cr] * c;
          float s = 0.0f;
          for (int64_t j = 0; j < c; ++j) s += dq[j] * px[j];
          v[cr] = s * k.inside[cr];
        }
        dg[2 * q] = ((v[1] - v[0]) * (1.0f - k.fy) + (v[3] - v[2]) * k.fy) * halfW;
        dg[2 * q + 1] = ((v[2] - v[0]) * (1.0f - k.fx) + (v[3] - v[1]) * k.fx) * halfH;
      }
    });
    // d input: a scatter; one image per unit, corners then points in order (fixed sums)
    tensorflow::Shard(workers->num_threads, workers->workers, n, p * (40 + 8 * c), [&](int64_t begin, int64_t end) {
      std::vector<Corners> ks(p);
      for (int64_t img = begin; img < end; ++img) {
        float* dimg = di + img * h * w * c;
        for (int64_t i = 0; i < p; ++i) ks[i] = CornersOf(g[2 * (img * p + i)], g[2 * (img * p + i) + 1], h, w);
        for (int cr = 0; cr < 4; ++cr) {
          for (int64_t i = 0; i < p; ++i) {
            float* dst = dimg + ks[i].row[cr] * c;
            const float* dq = d + (img * p + i) * c;
            const float wt = ks[i].w[cr];
            for (int64_t j = 0; j < c; ++j) dst[j] += dq[j] * wt;
          }
        }
      }
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("RassGridSample").Device(tensorflow::DEVICE_CPU), RassGridSampleOp);
REGISTER_KERNEL_BUILDER(Name("RassGridSampleGrad").Device(tensorflow::DEVICE_CPU), RassGridSampleGradOp);

}  // namespace
