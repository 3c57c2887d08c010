// Fused scaled-dot-product attention for TensorFlow's CPU runtime (rass's native backend).
//
// Why: the composite attention (matmul, softmax, matmul per query chunk, and its recomputing
// backward) is bound by memory traffic on the [B*H, chunk, Nk] score matrices; at a 64x64
// latent that was most of a tiny-UNet LoRA step. These kernels are FlashAttention-2 on the
// CPU: scores live only in a [BQ, BK] tile (in L2), the forward keeps a running max and sum
// per query row, and the backward recomputes each tile's probabilities from the saved
// log-sum-exp. Every tile product is an Eigen matrix product (packed, vectorised), the same
// kernels TensorFlow's own MatMul uses without oneDNN.
//
//   RassAttention(q [B,Nq,H*d], k [B,Nk,H*d], v [B,Nk,H*dv]; heads, scale)
//       -> out [B,Nq,H*dv], lse [B,H,Nq]
//   RassAttentionGrad(q, k, v, out, lse, dout; heads, scale) -> dq, dk, dv
//
// Tensors stay in the projection layout [B, N, heads * dim]: a head is a strided view, so no
// transpose is made on either side. Work units are tiles of the output (forward: a head and a
// block of query rows; backward: a head and a contiguous range of key blocks), and each unit
// sums in a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"
#include "Eigen/Core"

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("RassAttention")
    .Input("q: float")
    .Input("k: float")
    .Input("v: float")
    .Attr("heads: int >= 1")
    .Attr("scale: float")
    .Output("out: float")
    .Output("lse: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle q, v;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &q));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 3, &v));
      int64_t heads;
      TF_RETURN_IF_ERROR(c->GetAttr("heads", &heads));
      c->set_output(0, c->MakeShape({c->Dim(q, 0), c->Dim(q, 1), c->Dim(v, 2)}));
      c->set_output(1, c->MakeShape({c->Dim(q, 0), c->MakeDim(heads), c->Dim(q, 1)}));
      return tsl::OkStatus();
    });

REGISTER_OP("RassAttentionGrad")
    .Input("q: float")
    .Input("k: float")
    .Input("v: float")
    .Input("out: float")
    .Input("lse: float")
    .Input("dout: float")
    .Attr("heads: int >= 1")
    .Attr("scale: float")
    .Output("dq: float")
    .Output("dk: float")
    .Output("dv: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(2));
      return tsl::OkStatus();
    });

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
using HeadView = Eigen::Map<const RowMat, 0, Stride>;  // rows of one head inside [N, H*d]
using HeadOut = Eigen::Map<RowMat, 0, Stride>;
using Tile = Eigen::Map<RowMat>;

// Query rows per tile and keys per tile: a [64, 256] float tile is 64 KiB, so a tile's scores,
// probabilities and their gradient stay in L2 next to the K/V block they came from.
#ifndef RASS_BQ
#define RASS_BQ 64
#endif
#ifndef RASS_BK
#define RASS_BK 512
#endif
constexpr int64_t kBlockQ = RASS_BQ;
constexpr int64_t kBlockK = RASS_BK;
#ifndef RASS_GBQ
#define RASS_GBQ 64
#endif
#ifndef RASS_GBK
#define RASS_GBK 512
#endif
// the backward's tiles
constexpr int64_t kGradBlockQ = RASS_GBQ;
constexpr int64_t kGradBlockK = RASS_GBK;

struct Dims {
  int64_t b, nq, nk, heads, d, dv;
  int64_t qStride() const { return heads * d; }
  int64_t vStride() const { return heads * dv; }
};

tsl::Status CheckDims(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, Dims* out) {
  if (q.dims() != 3 || k.dims() != 3 || v.dims() != 3) return tsl::errors::InvalidArgument("RassAttention: q, k, v must be rank 3 [B, N, heads*dim]");
  const int64_t b = q.dim_size(0);
  if (k.dim_size(0) != b || v.dim_size(0) != b || k.dim_size(1) != v.dim_size(1) || k.dim_size(2) != q.dim_size(2) || q.dim_size(2) % heads != 0 || v.dim_size(2) % heads != 0)
    return tsl::errors::InvalidArgument("RassAttention: shapes do not match ", heads, " heads: q ", q.shape().DebugString(), ", k ", k.shape().DebugString(), ", v ", v.shape().DebugString());
  *out = Dims{b, q.dim_size(1), k.dim_size(1), heads, q.dim_size(2) / heads, v.dim_size(2) / heads};
  return tsl::OkStatus();
}

class RassAttentionOp : public OpKernel {
 public:
  explicit RassAttentionOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("heads", &heads_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("scale", &scale_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& q = ctx->input(0);
    const Tensor& k = ctx->input(1);
    const Tensor& v = ctx->input(2);
    Dims s;
    OP_REQUIRES_OK(ctx, CheckDims(q, k, v, heads_, &s));
    Tensor* out = nullptr;
    Tensor* lse = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({s.b, s.nq, s.heads * s.dv}), &out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({s.b, s.heads, s.nq}), &lse));
    if (s.nq == 0) return;
    const float* qp = q.flat<float>().data();
    const float* kp = k.flat<float>().data();
    const float* vp = v.flat<float>().data();
    float* op = out->flat<float>().data();
    float* lp = lse->flat<float>().data();
    const float scale = scale_;
    const int64_t qBlocks = (s.nq + kBlockQ - 1) / kBlockQ;
    auto work = [&](int64_t begin, int64_t end) {
      // Eigen's own (64-byte aligned) storage for every buffer a row is reduced in: its
      // vectorised sums start with the elements before the first aligned one, so a buffer at an
      // address with another alignment would sum in another order (results would change from
      // call to call with where malloc put it)
      RowMat qs(kBlockQ, s.d), acc(kBlockQ, s.dv), tile(kBlockQ, kBlockK);
      Eigen::VectorXf rowMax(kBlockQ), rowSum(kBlockQ);
      for (int64_t u = begin; u < end; ++u) {
        const int64_t bh = u / qBlocks, b = bh / s.heads, h = bh % s.heads;
        const int64_t i0 = (u % qBlocks) * kBlockQ, n = std::min(kBlockQ, s.nq - i0);
        auto qsn = qs.topRows(n);
        qsn = HeadView(qp + (b * s.nq + i0) * s.qStride() + h * s.d, n, s.d, Stride(s.qStride())) * scale;
        auto accn = acc.topRows(n);
        accn.setZero();
        rowMax.head(n).setConstant(-std::numeric_limits<float>::infinity());
        rowSum.head(n).setZero();
        for (int64_t j0 = 0; j0 < s.nk; j0 += kBlockK) {
          const int64_t m = std::min(kBlockK, s.nk - j0);
          HeadView kb(kp + (b * s.nk + j0) * s.qStride() + h * s.d, m, s.d, Stride(s.qStride()));
          HeadView vb(vp + (b * s.nk + j0) * s.vStride() + h * s.dv, m, s.dv, Stride(s.vStride()));
          Tile sc(tile.data(), n, m);
          sc.noalias() = qsn * kb.transpose();
          for (int64_t r = 0; r < n; ++r) {
            // online softmax: rescale what was summed under the old maximum
            const float mx = std::max(rowMax[r], sc.row(r).maxCoeff());
            const float alpha = std::exp(rowMax[r] - mx);
            sc.row(r) = (sc.row(r).array() - mx).exp().matrix();
            rowSum[r] = rowSum[r] * alpha + sc.row(r).sum();
            if (alpha != 1.0f) accn.row(r) *= alpha;
            rowMax[r] = mx;
          }
          accn.noalias() += sc * vb;
        }
        HeadOut o(op + (b * s.nq + i0) * s.vStride() + h * s.dv, n, s.dv, Stride(s.vStride()));
        float* l = lp + bh * s.nq + i0;
        for (int64_t r = 0; r < n; ++r) {
          o.row(r) = accn.row(r) / rowSum[r];
          l[r] = rowMax[r] + std::log(rowSum[r]);
        }
      }
    };
    const int64_t cost = kBlockQ * s.nk * (2 * s.d + 2 * s.dv + 12);
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, s.b * s.heads * qBlocks, cost, work);
  }

 private:
  int64_t heads_;
  float scale_;
};

// The backward, FlashAttention-2's: a unit is one head and a contiguous range of its key
// blocks. For each key block it walks every query tile, recomputes P = exp(S - lse), and
// accumulates dV += P^T dO, dS = P (dO V^T - rowsum(dO O)), dK += dS^T Q scale in tile-sized
// buffers, and dQ += dS K scale into the unit's own dQ buffer. A head's key range is split
// into as many parts as its shape asks for (never by the thread count, so sums are the same
// on any machine); the parts' dQ buffers are added in order at the end.
class RassAttentionGradOp : public OpKernel {
 public:
  explicit RassAttentionGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("heads", &heads_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("scale", &scale_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& q = ctx->input(0);
    const Tensor& k = ctx->input(1);
    const Tensor& v = ctx->input(2);
    const Tensor& out = ctx->input(3);
    const Tensor& lse = ctx->input(4);
    const Tensor& dout = ctx->input(5);
    Dims s;
    OP_REQUIRES_OK(ctx, CheckDims(q, k, v, heads_, &s));
    OP_REQUIRES(ctx, out.NumElements() == s.b * s.nq * s.heads * s.dv && dout.NumElements() == out.NumElements() && lse.NumElements() == s.b * s.heads * s.nq,
                tsl::errors::InvalidArgument("RassAttentionGrad: out, lse or dout has the wrong size"));
    Tensor *dq = nullptr, *dk = nullptr, *dv = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, q.shape(), &dq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, k.shape(), &dk));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, v.shape(), &dv));
    const float* qp = q.flat<float>().data();
    const float* kp = k.flat<float>().data();
    const float* vp = v.flat<float>().data();
    const float* outp = out.flat<float>().data();
    const float* lp = lse.flat<float>().data();
    const float* dop = dout.flat<float>().data();
    float* dqp = dq->flat<float>().data();
    float* dkp = dk->flat<float>().data();
    float* dvp = dv->flat<float>().data();
    const float scale = scale_;
    const int64_t bh = s.b * s.heads;
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    if (s.nq == 0 || s.nk == 0) {
      dq->flat<float>().setZero();
      dk->flat<float>().setZero();
      dv->flat<float>().setZero();
      return;
    }
    // rowsum(dO * O) per head and query row (= rowsum(dP * P)): [B*H, Nq]
    std::vector<float> rowDots(bh * s.nq);
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t i = 0; i < s.nq; ++i)
        for (int64_t h = 0; h < s.heads; ++h) {
          const int64_t at = (b * s.nq + i) * s.vStride() + h * s.dv;
          float acc = 0.0f;
          for (int64_t e = 0; e < s.dv; ++e) acc += dop[at + e] * outp[at + e];
          rowDots[(b * s.heads + h) * s.nq + i] = acc;
        }
    const int64_t kBlocks = (s.nk + kGradBlockK - 1) / kGradBlockK;
    // at least 8 units in all where the keys allow it (2-16 threads stay busy)
    const int64_t parts = std::min(kBlocks, std::max<int64_t>(1, (8 + bh - 1) / bh));
    // part p's dQ: written straight into dq when a head has one part, else into its buffer
    Eigen::VectorXf dqParts = Eigen::VectorXf::Zero(parts > 1 ? parts * bh * s.nq * s.d : 0);
    if (parts == 1) dq->flat<float>().setZero();
    auto work = [&](int64_t begin, int64_t end) {
      // (aligned storage, as in the forward)
      RowMat dkAcc(kGradBlockK, s.d), dvAcc(kGradBlockK, s.dv), qs(kGradBlockQ, s.d), pBuf(kGradBlockQ, kGradBlockK), dsBuf(kGradBlockQ, kGradBlockK);
      for (int64_t u = begin; u < end; ++u) {
        const int64_t head = u / parts, part = u % parts, b = head / s.heads, h = head % s.heads;
        const int64_t kb0 = kBlocks * part / parts, kb1 = kBlocks * (part + 1) / parts;
        for (int64_t kbi = kb0; kbi < kb1; ++kbi) {
          const int64_t j0 = kbi * kGradBlockK, m = std::min(kGradBlockK, s.nk - j0);
          HeadView kb(kp + (b * s.nk + j0) * s.qStride() + h * s.d, m, s.d, Stride(s.qStride()));
          HeadView vb(vp + (b * s.nk + j0) * s.vStride() + h * s.dv, m, s.dv, Stride(s.vStride()));
          auto dkm = dkAcc.topRows(m);
          auto dvm = dvAcc.topRows(m);
          dkm.setZero();
          dvm.setZero();
          for (int64_t i0 = 0; i0 < s.nq; i0 += kGradBlockQ) {
            const int64_t n = std::min(kGradBlockQ, s.nq - i0);
            auto qsn = qs.topRows(n);
            qsn = HeadView(qp + (b * s.nq + i0) * s.qStride() + h * s.d, n, s.d, Stride(s.qStride())) * scale;
            HeadView dob(dop + (b * s.nq + i0) * s.vStride() + h * s.dv, n, s.dv, Stride(s.vStride()));
            const float* l = lp + head * s.nq + i0;
            const float* dots = rowDots.data() + head * s.nq + i0;
            Tile p(pBuf.data(), n, m);
            Tile ds(dsBuf.data(), n, m);
            p.noalias() = qsn * kb.transpose();
            for (int64_t r = 0; r < n; ++r) p.row(r) = (p.row(r).array() - l[r]).exp().matrix();
            dvm.noalias() += p.transpose() * dob;
            ds.noalias() = dob * vb.transpose();
            for (int64_t r = 0; r < n; ++r) ds.row(r) = (p.row(r).array() * (ds.row(r).array() - dots[r])).matrix();
            // dK = dS^T (Q scale); dQ = dS K scale
            dkm.noalias() += ds.transpose() * qsn;
            if (parts == 1) {
              HeadOut dqb(dqp + (b * s.nq + i0) * s.qStride() + h * s.d, n, s.d, Stride(s.qStride()));
              dqb.noalias() += ds * kb;
            } else {
              Tile dqb(dqParts.data() + ((part * bh + head) * s.nq + i0) * s.d, n, s.d);
              dqb.noalias() += ds * kb;
            }
          }
          HeadOut(dkp + (b * s.nk + j0) * s.qStride() + h * s.d, m, s.d, Stride(s.qStride())) = dkm;
          HeadOut(dvp + (b * s.nk + j0) * s.vStride() + h * s.dv, m, s.dv, Stride(s.vStride())) = dvm;
        }
      }
    };
    const int64_t cost = s.nq * kGradBlockK * (kBlocks / parts + 1) * (4 * s.d + 4 * s.dv + 12);
    tensorflow::Shard(workers->num_threads, workers->workers, bh * parts, cost, work);
    // the scale of dQ, and the parts summed in order
    for (int64_t head = 0; head < bh; ++head) {
      const int64_t b = head / s.heads, h = head % s.heads;
      HeadOut dqh(dqp + b * s.nq * s.qStride() + h * s.d, s.nq, s.d, Stride(s.qStride()));
      if (parts == 1) {
        dqh *= scale;
        continue;
      }
      dqh = Tile(dqParts.data() + head * s.nq * s.d, s.nq, s.d);
      for (int64_t part = 1; part < parts; ++part) dqh += Tile(dqParts.data() + (part * bh + head) * s.nq * s.d, s.nq, s.d);
      dqh *= scale;
    }
  }

 private:
  int64_t heads_;
  float scale_;
};

REGISTER_KERNEL_BUILDER(Name("RassAttention").Device(tensorflow::DEVICE_CPU), RassAttentionOp);
REGISTER_KERNEL_BUILDER(Name("RassAttentionGrad").Device(tensorflow::DEVICE_CPU), RassAttentionGradOp);

}  // namespace

// Loadable with process.dlopen: an empty Node-API module, so Node keeps the library (and the
// ops its static initialisers registered with TensorFlow) loaded.
#include <node_api.h>
NAPI_MODULE_INIT() { return exports; }
