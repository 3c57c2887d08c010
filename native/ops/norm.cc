// Fused GroupNorm / LayerNorm for TensorFlow's CPU runtime (rass's native backend).
//
// Why: composed from tfjs ops, a GroupNorm's forward and backward are a dozen element-wise
// passes over the activation (moments, subtract, scale, shift; the backward's xhat, products
// and means): at sd21's first level (4,096 x 320) 41 ms per GroupNorm and 25 per LayerNorm,
// forward + backward, against about 5 that the memory traffic needs. Here each direction is
// two passes: statistics, then the output.
//
//   RassNorm(x [..., C], gamma [C], beta [C]; groups, rows, eps) -> y, mean [B, G], rstd [B, G]
//   RassNormGrad(dy, x, gamma, mean, rstd; groups, rows) -> dx, dgamma, dbeta
//
// x is B samples of `rows` consecutive rows of C channels; each sample's channels fall into
// `groups` groups of C / groups, normalised over the sample's rows and the group's channels
// (GroupNorm: rows = H x W; LayerNorm: rows = 1, groups = 1). Work units are fixed ranges of
// rows (a slice of one sample, or several whole samples), decided by the shape alone; partial
// sums are kept in double and added in order, so results do not depend on the thread count.
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

REGISTER_OP("RassNorm")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Attr("groups: int >= 1")
    .Attr("rows: int >= 1")
    .Attr("eps: float")
    .Output("y: float")
    .Output("mean: float")
    .Output("rstd: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->UnknownShapeOfRank(2));
      c->set_output(2, c->UnknownShapeOfRank(2));
      return tsl::OkStatus();
    });

REGISTER_OP("RassNormGrad")
    .Input("dy: float")
    .Input("x: float")
    .Input("gamma: float")
    .Input("mean: float")
    .Input("rstd: float")
    .Attr("groups: int >= 1")
    .Attr("rows: int >= 1")
    .Output("dx: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      c->set_output(2, c->input(2));
      return tsl::OkStatus();
    });

namespace {

// Rows per work unit: about 32K values, enough to amortise a unit and to give 2-16 threads
// several units each at diffusion sizes.
constexpr int64_t kUnitValues = 32768;

struct Plan {
  int64_t b, s, c, g, cg;
  bool split;      // a sample spans several units (GroupNorm over many rows)
  int64_t blocks;  // split: units per sample
  int64_t per;     // !split: whole samples per unit
  int64_t units;

  Plan(int64_t total, int64_t rows, int64_t channels, int64_t groups) : s(rows), c(channels), g(groups), cg(channels / groups) {
    b = total / (rows * channels);
    const int64_t unitRows = std::max<int64_t>(1, kUnitValues / channels);
    split = rows > unitRows;
    blocks = split ? (rows + unitRows - 1) / unitRows : 1;
    per = split ? 1 : std::max<int64_t>(1, unitRows / rows);
    units = split ? b * blocks : (b + per - 1) / per;
  }
  // rows [r0, r1) of the flattened [B * S, C] matrix
  void Range(int64_t u, int64_t* r0, int64_t* r1) const {
    if (split) {
      const int64_t sample = u / blocks, blk = u % blocks;
      *r0 = sample * s + s * blk / blocks;
      *r1 = sample * s + s * (blk + 1) / blocks;
    } else {
      *r0 = u * per * s;
      *r1 = std::min(b, (u + 1) * per) * s;
    }
  }
  // samples whose statistics unit u holds (split: its one sample, partial)
  int64_t FirstSample(int64_t u) const { return split ? u / blocks : u * per; }
};

tsl::Status CheckInputs(const Tensor& x, const Tensor& gamma, int64_t groups, int64_t rows, int64_t* channels) {
  if (x.dims() < 1) return tsl::errors::InvalidArgument("RassNorm: x must have a channel dimension");
  const int64_t c = x.dim_size(x.dims() - 1);
  if (c % groups != 0) return tsl::errors::InvalidArgument("RassNorm: ", c, " channels are not divisible by ", groups, " groups");
  if (gamma.NumElements() != c) return tsl::errors::InvalidArgument("RassNorm: gamma has ", gamma.NumElements(), " values for ", c, " channels");
  if (c == 0 || x.NumElements() % (rows * c) != 0) return tsl::errors::InvalidArgument("RassNorm: ", x.shape().DebugString(), " is not a whole number of samples of ", rows, " rows");
  *channels = c;
  return tsl::OkStatus();
}

void RunUnits(OpKernelContext* ctx, const Plan& p, const std::function<void(int64_t)>& unit) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, p.units, kUnitValues * 6, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) unit(u);
  });
}

class RassNormOp : public OpKernel {
 public:
  explicit RassNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rows", &rows_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("eps", &eps_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& gamma = ctx->input(1);
    const Tensor& beta = ctx->input(2);
    int64_t channels;
    OP_REQUIRES_OK(ctx, CheckInputs(x, gamma, groups_, rows_, &channels));
    OP_REQUIRES(ctx, beta.NumElements() == channels, tsl::errors::InvalidArgument("RassNorm: beta has ", beta.NumElements(), " values for ", channels, " channels"));
    const Plan p(x.NumElements(), rows_, channels, groups_);
    Tensor *y = nullptr, *mean = nullptr, *rstd = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({p.b, p.g}), &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({p.b, p.g}), &rstd));
    if (p.b == 0) return;
    const float* xp = x.flat<float>().data();
    const float* gp = gamma.flat<float>().data();
    const float* bp = beta.flat<float>().data();
    float* yp = y->flat<float>().data();
    float* mp = mean->flat<float>().data();
    float* rp = rstd->flat<float>().data();
    // 1. sums of x and x^2 per (unit, group) when split, else per (sample, group) directly
    std::vector<double> sums((p.split ? p.units : p.b) * p.g * 2, 0.0);
    RunUnits(ctx, p, [&](int64_t u) {
      int64_t r0, r1;
      p.Range(u, &r0, &r1);
      for (int64_t r = r0; r < r1; ++r) {
        double* acc = sums.data() + (p.split ? u : r / p.s) * p.g * 2;
        const float* row = xp + r * p.c;
        for (int64_t grp = 0; grp < p.g; ++grp) {
          // in double: mean^2 is subtracted from mean(x^2) below, so these sums need the digits
          // (a float32 sum of x^2 for activations around 50 lost the variance to 1e-3)
          double s1 = 0.0, s2 = 0.0;
          for (int64_t k = grp * p.cg; k < (grp + 1) * p.cg; ++k) {
            const double v = row[k];
            s1 += v;
            s2 += v * v;
          }
          acc[grp * 2] += s1;
          acc[grp * 2 + 1] += s2;
        }
      }
    });
    const double n = static_cast<double>(p.s * p.cg);
    for (int64_t sample = 0; sample < p.b; ++sample)
      for (int64_t grp = 0; grp < p.g; ++grp) {
        double s1 = 0.0, s2 = 0.0;
        if (p.split) {
          for (int64_t blk = 0; blk < p.blocks; ++blk) {
            s1 += sums[((sample * p.blocks + blk) * p.g + grp) * 2];
            s2 += sums[((sample * p.blocks + blk) * p.g + grp) * 2 + 1];
          }
        } else {
          s1 = sums[(sample * p.g + grp) * 2];
          s2 = sums[(sample * p.g + grp) * 2 + 1];
        }
        const double mu = s1 / n;
        const double var = std::max(0.0, s2 / n - mu * mu);
        mp[sample * p.g + grp] = static_cast<float>(mu);
        rp[sample * p.g + grp] = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps_)));
      }
    // 2. y = (x - mean) rstd gamma + beta
    RunUnits(ctx, p, [&](int64_t u) {
      int64_t r0, r1;
      p.Range(u, &r0, &r1);
      std::vector<float> a(p.c), sh(p.c);
      int64_t current = -1;
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t sample = r / p.s;
        if (sample != current) {
          for (int64_t k = 0; k < p.c; ++k) {
            const int64_t at = sample * p.g + k / p.cg;
            a[k] = rp[at] * gp[k];
            sh[k] = bp[k] - mp[at] * a[k];
          }
          current = sample;
        }
        const float* row = xp + r * p.c;
        float* out = yp + r * p.c;
        for (int64_t k = 0; k < p.c; ++k) out[k] = row[k] * a[k] + sh[k];
      }
    });
  }

 private:
  int64_t groups_, rows_;
  float eps_;
};

// dx = rstd (dy gamma - (sum(dy gamma) + xhat sum(dy gamma xhat)) / N) per sample and group
// (N values each), xhat = (x - mean) rstd; dgamma = sum(dy xhat), dbeta = sum(dy) per channel.
class RassNormGradOp : public OpKernel {
 public:
  explicit RassNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rows", &rows_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& gamma = ctx->input(2);
    const Tensor& mean = ctx->input(3);
    const Tensor& rstd = ctx->input(4);
    int64_t channels;
    OP_REQUIRES_OK(ctx, CheckInputs(x, gamma, groups_, rows_, &channels));
    const Plan p(x.NumElements(), rows_, channels, groups_);
    OP_REQUIRES(ctx, dy.NumElements() == x.NumElements() && mean.NumElements() == p.b * p.g && rstd.NumElements() == p.b * p.g,
                tsl::errors::InvalidArgument("RassNormGrad: dy, mean or rstd has the wrong size"));
    Tensor *dx = nullptr, *dgamma = nullptr, *dbeta = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, gamma.shape(), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, gamma.shape(), &dbeta));
    const float* dyp = dy.flat<float>().data();
    const float* xp = x.flat<float>().data();
    const float* gp = gamma.flat<float>().data();
    const float* mp = mean.flat<float>().data();
    const float* rp = rstd.flat<float>().data();
    float* dxp = dx->flat<float>().data();
    if (p.b == 0) {
      dgamma->flat<float>().setZero();
      dbeta->flat<float>().setZero();
      return;
    }
    // 1. per unit and channel: sum(dy), sum(dy xhat); per (unit or sample) and group:
    //    sum(dy gamma), sum(dy gamma xhat)
    std::vector<double> perChannel(p.units * p.c * 2, 0.0);
    std::vector<double> perGroup((p.split ? p.units : p.b) * p.g * 2, 0.0);
    RunUnits(ctx, p, [&](int64_t u) {
      int64_t r0, r1;
      p.Range(u, &r0, &r1);
      std::vector<float> chDy(p.c, 0.0f), chDyXhat(p.c, 0.0f);
      // a slice of one sample sums per channel over its rows in float (at most kUnitValues / C
      // rows), whole samples into double per sample
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t sample = r / p.s;
        const float* d = dyp + r * p.c;
        const float* row = xp + r * p.c;
        double* grpAcc = perGroup.data() + (p.split ? u : sample) * p.g * 2;
        for (int64_t grp = 0; grp < p.g; ++grp) {
          const float mu = mp[sample * p.g + grp], rs = rp[sample * p.g + grp];
          float sB = 0.0f, sA = 0.0f;
          for (int64_t k = grp * p.cg; k < (grp + 1) * p.cg; ++k) {
            const float xhat = (row[k] - mu) * rs;
            const float dg = d[k] * gp[k];
            chDy[k] += d[k];
            chDyXhat[k] += d[k] * xhat;
            sB += dg;
            sA += dg * xhat;
          }
          grpAcc[grp * 2] += sB;
          grpAcc[grp * 2 + 1] += sA;
        }
      }
      double* ch = perChannel.data() + u * p.c * 2;
      for (int64_t k = 0; k < p.c; ++k) {
        ch[k * 2] = chDy[k];
        ch[k * 2 + 1] = chDyXhat[k];
      }
    });
    // per sample and group, the blocks of a split sample added in order
    std::vector<double> groupSums(p.b * p.g * 2);
    for (int64_t sample = 0; sample < p.b; ++sample)
      for (int64_t grp = 0; grp < p.g; ++grp)
        for (int64_t j = 0; j < 2; ++j) {
          double acc = 0.0;
          if (p.split)
            for (int64_t blk = 0; blk < p.blocks; ++blk) acc += perGroup[((sample * p.blocks + blk) * p.g + grp) * 2 + j];
          else
            acc = perGroup[(sample * p.g + grp) * 2 + j];
          groupSums[(sample * p.g + grp) * 2 + j] = acc;
        }
    float* dgp = dgamma->flat<float>().data();
    float* dbp = dbeta->flat<float>().data();
    for (int64_t k = 0; k < p.c; ++k) {
      double sDy = 0.0, sDyXhat = 0.0;
      for (int64_t u = 0; u < p.units; ++u) {
        sDy += perChannel[(u * p.c + k) * 2];
        sDyXhat += perChannel[(u * p.c + k) * 2 + 1];
      }
      dbp[k] = static_cast<float>(sDy);
      dgp[k] = static_cast<float>(sDyXhat);
    }
    // 2. dx
    const float invN = static_cast<float>(1.0 / static_cast<double>(p.s * p.cg));
    RunUnits(ctx, p, [&](int64_t u) {
      int64_t r0, r1;
      p.Range(u, &r0, &r1);
      std::vector<float> a(p.c), sh(p.c), sc(p.c);
      int64_t current = -1;
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t sample = r / p.s;
        if (sample != current) {
          // dx = rs (dy gamma - sB/N - (x - mu) rs sA/N) = dy (rs gamma) + x (-rs^2 sA/N) + (rs (mu rs sA - sB)/N)
          for (int64_t k = 0; k < p.c; ++k) {
            const int64_t at = sample * p.g + k / p.cg;
            const float rs = rp[at], mu = mp[at];
            const float sB = static_cast<float>(groupSums[at * 2]) * invN, sA = static_cast<float>(groupSums[at * 2 + 1]) * invN;
            a[k] = rs * gp[k];
            sc[k] = -rs * rs * sA;
            sh[k] = rs * (mu * rs * sA - sB);
          }
          current = sample;
        }
        const float* d = dyp + r * p.c;
        const float* row = xp + r * p.c;
        float* out = dxp + r * p.c;
        for (int64_t k = 0; k < p.c; ++k) out[k] = d[k] * a[k] + row[k] * sc[k] + sh[k];
      }
    });
  }

 private:
  int64_t groups_, rows_;
};

REGISTER_KERNEL_BUILDER(Name("RassNorm").Device(tensorflow::DEVICE_CPU), RassNormOp);
REGISTER_KERNEL_BUILDER(Name("RassNormGrad").Device(tensorflow::DEVICE_CPU), RassNormGradOp);

}  // namespace
