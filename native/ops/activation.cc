// Fused GEGLU and SiLU for TensorFlow's CPU runtime (rass's native backend).
//
// Why: composed from tfjs ops, GEGLU (value * gelu(gate), the feed-forward of every
// transformer block) is a split, four element-wise ops forward and a dozen backward, each a
// pass over an activation that at sd21's first level is 4,096 x 2,560 values: about 60 ms per
// block forward + backward, against the few ms its memory traffic needs. SiLU (every resnet,
// twice) is two ops forward and six backward. Here each direction is one pass, with Eigen's
// vectorised erf / exp / logistic (the functions TensorFlow's own Erf, Exp and Sigmoid use).
//
//   RassGeglu(h [..., 2n]) -> y [..., n]          y = a * gelu(g), a = h[..., :n], g = h[..., n:]
//   RassGegluGrad(dy [..., n], h) -> dh [..., 2n]   da = dy gelu(g), dg = dy a gelu'(g)
//   RassSilu(x) -> y = x sigmoid(x)
//   RassSiluGrad(dy, x) -> dx = dy s (1 + x (1 - s)), s = sigmoid(x)
//   RassSoftmaxGrad(dy, y) -> dx = dy y - (sum over the last axis of dy y) y   (y = softmax(x))
//
// The softmax gradient (every composite attention: Mask2Former's masked attention, hand-written
// attention in user code) is four ops and three passes over a scores-sized tensor composed;
// here one pass per row, its sum in double.
//
// gelu is the exact (erf) form, torch's default: gelu(g) = g Phi(g), Phi(g) = (1 + erf(g / sqrt 2)) / 2,
// gelu'(g) = Phi(g) + g phi(g), phi(g) = exp(-g^2 / 2) / sqrt(2 pi). Element-wise only: no sums,
// so the results do not depend on how the work is split.
#include <algorithm>
#include <cmath>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"
#include "unsupported/Eigen/SpecialFunctions"

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("RassGeglu")
    .Input("h: float")
    .Output("y: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle h = c->input(0);
      if (!c->RankKnown(h)) {
        c->set_output(0, c->UnknownShape());
        return tsl::OkStatus();
      }
      DimensionHandle half;
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(h, -1), 2, /*evenly_divisible=*/true, &half));
      ShapeHandle out;
      TF_RETURN_IF_ERROR(c->ReplaceDim(h, -1, half, &out));
      c->set_output(0, out);
      return tsl::OkStatus();
    });

REGISTER_OP("RassGegluGrad")
    .Input("dy: float")
    .Input("h: float")
    .Output("dh: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return tsl::OkStatus();
    });

REGISTER_OP("RassSilu")
    .Input("x: float")
    .Output("y: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return tsl::OkStatus();
    });

REGISTER_OP("RassSiluGrad")
    .Input("dy: float")
    .Input("x: float")
    .Output("dx: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return tsl::OkStatus();
    });

REGISTER_OP("RassSoftmaxGrad")
    .Input("dy: float")
    .Input("y: float")
    .Output("dx: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return tsl::OkStatus();
    });

namespace {

using Array = Eigen::Array<float, Eigen::Dynamic, 1>;
using In = Eigen::Map<const Array>;
using Out = Eigen::Map<Array>;

// Values per piece of work: enough to amortise a shard, small enough that a piece's
// temporaries stay in L2 (each piece evaluates its expressions in one pass).
constexpr int64_t kPiece = 8192;

constexpr float kSqrt1_2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// Run `piece(begin, count)` over [0, n) in pieces of kPiece, spread over TensorFlow's threads.
void ForPieces(OpKernelContext* ctx, int64_t n, int64_t costPerValue, const std::function<void(int64_t, int64_t)>& piece) {
  const int64_t pieces = (n + kPiece - 1) / kPiece;
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, pieces, kPiece * costPerValue, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t start = p * kPiece;
      piece(start, std::min(kPiece, n - start));
    }
  });
}

// GEGLU over rows of 2n values; pieces never straddle a row's halves because each piece is
// cut from one row (a long row is split into several pieces, a short row is one piece).
void ForRowPieces(OpKernelContext* ctx, int64_t rows, int64_t n, int64_t costPerValue, const std::function<void(int64_t, int64_t, int64_t)>& piece) {
  const int64_t perRow = (n + kPiece - 1) / kPiece;
  const int64_t rowsPer = perRow == 1 ? std::max<int64_t>(1, kPiece / std::max<int64_t>(n, 1)) : 1;
  const int64_t units = perRow == 1 ? (rows + rowsPer - 1) / rowsPer : rows * perRow;
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, units, kPiece * costPerValue, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      if (perRow == 1) {
        for (int64_t r = u * rowsPer; r < std::min(rows, (u + 1) * rowsPer); ++r) piece(r, 0, n);
      } else {
        const int64_t r = u / perRow, c0 = (u % perRow) * kPiece;
        piece(r, c0, std::min(kPiece, n - c0));
      }
    }
  });
}

tsl::Status GegluDims(const Tensor& h, int64_t* rows, int64_t* n) {
  if (h.dims() < 1) return tsl::errors::InvalidArgument("RassGeglu: h must have a last dimension");
  const int64_t last = h.dim_size(h.dims() - 1);
  if (last % 2 != 0) return tsl::errors::InvalidArgument("RassGeglu: last dimension ", last, " is odd");
  *n = last / 2;
  *rows = last == 0 ? 0 : h.NumElements() / last;
  return tsl::OkStatus();
}

class RassGegluOp : public OpKernel {
 public:
  explicit RassGegluOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& h = ctx->input(0);
    int64_t rows, n;
    OP_REQUIRES_OK(ctx, GegluDims(h, &rows, &n));
    TensorShape shape = h.shape();
    shape.set_dim(shape.dims() - 1, n);
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &y));
    if (rows == 0 || n == 0) return;
    const float* hp = h.flat<float>().data();
    float* yp = y->flat<float>().data();
    ForRowPieces(ctx, rows, n, 24, [&](int64_t r, int64_t c0, int64_t len) {
      In a(hp + r * 2 * n + c0, len);
      In g(hp + r * 2 * n + n + c0, len);
      Out(yp + r * n + c0, len) = a * (g * (0.5f * ((g * kSqrt1_2).erf() + 1.0f)));
    });
  }
};

class RassGegluGradOp : public OpKernel {
 public:
  explicit RassGegluGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& h = ctx->input(1);
    int64_t rows, n;
    OP_REQUIRES_OK(ctx, GegluDims(h, &rows, &n));
    OP_REQUIRES(ctx, dy.NumElements() == rows * n, tsl::errors::InvalidArgument("RassGegluGrad: dy has ", dy.NumElements(), " values for ", rows, " rows of ", n));
    Tensor* dh = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, h.shape(), &dh));
    if (rows == 0 || n == 0) return;
    const float* dyp = dy.flat<float>().data();
    const float* hp = h.flat<float>().data();
    float* dhp = dh->flat<float>().data();
    ForRowPieces(ctx, rows, n, 40, [&](int64_t r, int64_t c0, int64_t len) {
      In d(dyp + r * n + c0, len);
      In a(hp + r * 2 * n + c0, len);
      In g(hp + r * 2 * n + n + c0, len);
      const Array phi = 0.5f * ((g * kSqrt1_2).erf() + 1.0f);
      Out(dhp + r * 2 * n + c0, len) = d * (g * phi);
      Out(dhp + r * 2 * n + n + c0, len) = d * a * (phi + g * ((g.square() * -0.5f).exp() * kInvSqrt2Pi));
    });
  }
};

class RassSiluOp : public OpKernel {
 public:
  explicit RassSiluOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    const float* xp = x.flat<float>().data();
    float* yp = y->flat<float>().data();
    ForPieces(ctx, x.NumElements(), 12, [&](int64_t s, int64_t len) {
      In v(xp + s, len);
      Out(yp + s, len) = v * v.logistic();
    });
  }
};

class RassSiluGradOp : public OpKernel {
 public:
  explicit RassSiluGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    OP_REQUIRES(ctx, dy.NumElements() == x.NumElements(), tsl::errors::InvalidArgument("RassSiluGrad: dy has ", dy.NumElements(), " values, x ", x.NumElements()));
    Tensor* dx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    const float* dyp = dy.flat<float>().data();
    const float* xp = x.flat<float>().data();
    float* dxp = dx->flat<float>().data();
    ForPieces(ctx, x.NumElements(), 16, [&](int64_t s, int64_t len) {
      In d(dyp + s, len);
      In v(xp + s, len);
      const Array sg = v.logistic();
      Out(dxp + s, len) = d * (sg * (v * (1.0f - sg) + 1.0f));
    });
  }
};

class RassSoftmaxGradOp : public OpKernel {
 public:
  explicit RassSoftmaxGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& y = ctx->input(1);
    OP_REQUIRES(ctx, y.dims() >= 1 && dy.shape() == y.shape(), tsl::errors::InvalidArgument("RassSoftmaxGrad: dy ", dy.shape().DebugString(), " and y ", y.shape().DebugString(), " must have one shape of rank >= 1"));
    Tensor* dx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, y.shape(), &dx));
    const int64_t n = y.dim_size(y.dims() - 1);
    if (n == 0 || y.NumElements() == 0) return;
    const int64_t rows = y.NumElements() / n;
    const float* dyp = dy.flat<float>().data();
    const float* yp = y.flat<float>().data();
    float* dxp = dx->flat<float>().data();
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, rows, n * 6, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        In d(dyp + r * n, n);
        In v(yp + r * n, n);
        const float s = static_cast<float>((d * v).cast<double>().sum());
        Out(dxp + r * n, n) = d * v - s * v;
      }
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("RassSoftmaxGrad").Device(tensorflow::DEVICE_CPU), RassSoftmaxGradOp);
REGISTER_KERNEL_BUILDER(Name("RassGeglu").Device(tensorflow::DEVICE_CPU), RassGegluOp);
REGISTER_KERNEL_BUILDER(Name("RassGegluGrad").Device(tensorflow::DEVICE_CPU), RassGegluGradOp);
REGISTER_KERNEL_BUILDER(Name("RassSilu").Device(tensorflow::DEVICE_CPU), RassSiluOp);
REGISTER_KERNEL_BUILDER(Name("RassSiluGrad").Device(tensorflow::DEVICE_CPU), RassSiluGradOp);

}  // namespace
