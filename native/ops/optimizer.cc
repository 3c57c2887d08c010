// AdamW for a whole parameter list in one op, and the global gradient norm's sum of squares in
// another, for TensorFlow's CPU runtime (rass's native backend).
//
// Why: the optimiser written with tfjs ops (framework/engine/optim.ts) is fourteen element-wise
// ops per parameter tensor, and the gradient clipping before it one more. A LoRA + head step
// updates about 300 tensors: some 4,500 ops, each a dispatch in an eager step (tens of
// microseconds apiece) and a node in a compiled step (half the nodes of the RASS step's second
// function, each scheduled by TensorFlow's executor). Here the whole update is one op.
//
//   RassAdamW(params[N], m[N], v[N], grads[N], decay[N], step[N], scale, sqrt_c2)
//     -> new_params[N], new_m[N], new_v[N]
//   per value, in this order, each operation rounded to float as its own TensorFlow op would:
//     g' = g * scale                          (global-norm clipping's coefficient)
//     m' = m * beta1 + g' * one_minus_beta1
//     v' = v * beta2 + (g' * g') * one_minus_beta2
//     p' = p * decay - (m' / (sqrt(v') / sqrt_c2 + eps)) * step
// decay (1 - lr * wd, or 1), step (lr / (1 - beta1^t)) are scalars per tensor, scale and sqrt_c2
// (sqrt(1 - beta2^t)) scalars for all. The four beta numbers are attrs as float32 (1 - beta is
// rounded from the double, as tfjs rounds the number it is given), so the results equal the
// composite ops' to the bit: the loop is compiled with fp-contract off (GCC would otherwise fuse
// a multiply and an add into one FMA, rounding once where TensorFlow's Mul and Add round twice),
// and sqrt and division are IEEE-exact in scalar and vector form.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

using tensorflow::OpInputList;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::OpOutputList;
using tensorflow::Tensor;
using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("RassSumSquares")
    .Attr("N: int >= 1")
    .Input("x: N * float")
    .Output("sum: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Scalar());
      return tsl::OkStatus();
    });

REGISTER_OP("RassAdamW")
    .Attr("N: int >= 1")
    .Attr("beta1: float")
    .Attr("one_minus_beta1: float")
    .Attr("beta2: float")
    .Attr("one_minus_beta2: float")
    .Attr("eps: float")
    .Input("params: N * float")
    .Input("m: N * float")
    .Input("v: N * float")
    .Input("grads: N * float")
    .Input("decay: N * float")
    .Input("step: N * float")
    .Input("scale: float")
    .Input("sqrt_c2: float")
    .Output("new_params: N * float")
    .Output("new_m: N * float")
    .Output("new_v: N * float")
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      for (int k = 0; k < 3; ++k)
        for (int i = 0; i < n; ++i) c->set_output(k * n + i, c->input(i));
      return tsl::OkStatus();
    });

namespace {

// Values per piece of work: enough to amortise a shard.
constexpr int64_t kPiece = 16384;

// One piece of one tensor. Not inlined, and with contraction off (GCC's optimize attribute,
// clang's pragma; one operation per statement besides): every product and sum below is rounded
// to float on its own, as the composite's separate ops round them.
__attribute__((noinline, optimize("fp-contract=off"))) void AdamWPiece(const float* p, const float* mi, const float* vi, const float* g, float* po, float* mo, float* vo, int64_t len, float d, float st, float scale, float sqrtC2, float b1, float c1, float b2, float c2, float eps) {
#pragma STDC FP_CONTRACT OFF
  for (int64_t j = 0; j < len; ++j) {
    const float gs = g[j] * scale;
    const float m1 = mi[j] * b1;
    const float m2 = gs * c1;
    const float mn = m1 + m2;
    const float v1 = vi[j] * b2;
    const float gg = gs * gs;
    const float v2 = gg * c2;
    const float vn = v1 + v2;
    const float root = std::sqrt(vn);
    const float scaled = root / sqrtC2;
    const float den = scaled + eps;
    const float decayed = p[j] * d;
    const float ratio = mn / den;
    const float update = ratio * st;
    po[j] = decayed - update;
    mo[j] = mn;
    vo[j] = vn;
  }
}

class RassAdamWOp : public OpKernel {
 public:
  explicit RassAdamWOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("beta1", &b1_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("one_minus_beta1", &c1_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("beta2", &b2_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("one_minus_beta2", &c2_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("eps", &eps_));
  }

  void Compute(OpKernelContext* ctx) override {
    OpInputList params, m, v, grads, decay, step;
    OP_REQUIRES_OK(ctx, ctx->input_list("params", &params));
    OP_REQUIRES_OK(ctx, ctx->input_list("m", &m));
    OP_REQUIRES_OK(ctx, ctx->input_list("v", &v));
    OP_REQUIRES_OK(ctx, ctx->input_list("grads", &grads));
    OP_REQUIRES_OK(ctx, ctx->input_list("decay", &decay));
    OP_REQUIRES_OK(ctx, ctx->input_list("step", &step));
    const Tensor& scaleT = ctx->input(6 * params.size());
    const Tensor& sqrtC2T = ctx->input(6 * params.size() + 1);
    OP_REQUIRES(ctx, scaleT.NumElements() == 1 && sqrtC2T.NumElements() == 1, tsl::errors::InvalidArgument("RassAdamW: scale and sqrt_c2 must be scalars"));
    const float scale = scaleT.flat<float>()(0);
    const float sqrtC2 = sqrtC2T.flat<float>()(0);
    const int n = params.size();
    OpOutputList outP, outM, outV;
    OP_REQUIRES_OK(ctx, ctx->output_list("new_params", &outP));
    OP_REQUIRES_OK(ctx, ctx->output_list("new_m", &outM));
    OP_REQUIRES_OK(ctx, ctx->output_list("new_v", &outV));

    // every tensor cut into pieces; the pieces of all tensors are shared out over the threads
    struct Piece {
      int tensor;
      int64_t start, len;
    };
    std::vector<Piece> pieces;
    std::vector<const float*> pp(n), mp(n), vp(n), gp(n);
    std::vector<float*> op(n), om(n), ov(n);
    std::vector<float> dk(n), sk(n);
    for (int i = 0; i < n; ++i) {
      const int64_t size = params[i].NumElements();
      OP_REQUIRES(ctx, m[i].NumElements() == size && v[i].NumElements() == size && grads[i].NumElements() == size,
                  tsl::errors::InvalidArgument("RassAdamW: tensor ", i, ": params has ", size, " values, m ", m[i].NumElements(), ", v ", v[i].NumElements(), ", grads ", grads[i].NumElements()));
      OP_REQUIRES(ctx, decay[i].NumElements() == 1 && step[i].NumElements() == 1, tsl::errors::InvalidArgument("RassAdamW: decay and step must be scalars (tensor ", i, ")"));
      Tensor *tp = nullptr, *tm = nullptr, *tv = nullptr;
      OP_REQUIRES_OK(ctx, outP.allocate(i, params[i].shape(), &tp));
      OP_REQUIRES_OK(ctx, outM.allocate(i, params[i].shape(), &tm));
      OP_REQUIRES_OK(ctx, outV.allocate(i, params[i].shape(), &tv));
      pp[i] = params[i].flat<float>().data();
      mp[i] = m[i].flat<float>().data();
      vp[i] = v[i].flat<float>().data();
      gp[i] = grads[i].flat<float>().data();
      op[i] = tp->flat<float>().data();
      om[i] = tm->flat<float>().data();
      ov[i] = tv->flat<float>().data();
      dk[i] = decay[i].flat<float>()(0);
      sk[i] = step[i].flat<float>()(0);
      for (int64_t s = 0; s < size; s += kPiece) pieces.push_back({i, s, std::min(kPiece, size - s)});
    }
    const float b1 = b1_, c1 = c1_, b2 = b2_, c2 = c2_, eps = eps_;
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, static_cast<int64_t>(pieces.size()), kPiece * 12, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const Piece& pc = pieces[k];
        const int i = pc.tensor;
        AdamWPiece(pp[i] + pc.start, mp[i] + pc.start, vp[i] + pc.start, gp[i] + pc.start, op[i] + pc.start, om[i] + pc.start, ov[i] + pc.start, pc.len, dk[i], sk[i], scale, sqrtC2, b1, c1, b2, c2, eps);
      }
    });
  }

 private:
  float b1_, c1_, b2_, c2_, eps_;
};

// The sum of squares of every value of N tensors (the global gradient norm's square, for
// clipping), where the composite takes a Square and a Sum per tensor and an AddN: 2N + 1 ops.
// Each piece sums in double; the pieces' sums are added in a fixed order, so the result does
// not depend on the thread count (it can differ from the composite's float sums in the last
// bits, closer to the exact value).
class RassSumSquaresOp : public OpKernel {
 public:
  explicit RassSumSquaresOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    OpInputList x;
    OP_REQUIRES_OK(ctx, ctx->input_list("x", &x));
    struct Piece {
      const float* p;
      int64_t len;
    };
    std::vector<Piece> pieces;
    for (int i = 0; i < x.size(); ++i) {
      const float* p = x[i].flat<float>().data();
      const int64_t size = x[i].NumElements();
      for (int64_t s = 0; s < size; s += kPiece) pieces.push_back({p + s, std::min(kPiece, size - s)});
    }
    std::vector<double> partial(pieces.size(), 0.0);
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, static_cast<int64_t>(pieces.size()), kPiece * 2, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        double acc = 0.0;
        for (int64_t j = 0; j < pieces[k].len; ++j) {
          const double v = pieces[k].p[j];
          acc += v * v;
        }
        partial[k] = acc;
      }
    });
    double total = 0.0;
    for (double v : partial) total += v;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, tensorflow::TensorShape({}), &out));
    out->scalar<float>()() = static_cast<float>(total);
  }
};

REGISTER_KERNEL_BUILDER(Name("RassSumSquares").Device(tensorflow::DEVICE_CPU), RassSumSquaresOp);
REGISTER_KERNEL_BUILDER(Name("RassAdamW").Device(tensorflow::DEVICE_CPU), RassAdamWOp);

}  // namespace
