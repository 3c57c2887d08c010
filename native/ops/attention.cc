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
    // Short key rows (cross-attention over 77 prompt tokens) take taller query tiles, so a
    // tile keeps about kBlockQ x kBlockK scores and its products stay large enough to run fast.
    const int64_t bq = kBlockQ * std::max<int64_t>(1, kBlockK / std::max<int64_t>(1, std::min(s.nk, kBlockK)));
    const int64_t qBlocks = (s.nq + bq - 1) / bq;
    auto work = [&](int64_t begin, int64_t end) {
      // Eigen's own (64-byte aligned) storage for every buffer a row is reduced in: its
      // vectorised sums start with the elements before the first aligned one, so a buffer at an
      // address with another alignment would sum in another order (results would change from
      // call to call with where malloc put it)
      RowMat qs(bq, s.d), acc(bq, s.dv), tile(bq, std::min(s.nk, kBlockK));
      Eigen::VectorXf rowMax(bq), rowSum(bq);
      for (int64_t u = begin; u < end; ++u) {
        const int64_t bh = u / qBlocks, b = bh / s.heads, h = bh % s.heads;
        const int64_t i0 = (u % qBlocks) * bq, n = std::min(bq, s.nq - i0);
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
    const int64_t cost = bq * s.nk * (2 * s.d + 2 * s.dv + 12);
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, s.b * s.heads * qBlocks, cost, work);
  }

 private:
  int64_t heads_;
  float scale_;
};

// The backward, FlashAttention-2's: a unit is one head, a contiguous range of its key blocks
// and a contiguous range of its query tiles. For each key block it walks its query tiles,
// recomputes P = exp(S - lse), and accumulates dV += P^T dO, dS = P (dO V^T - rowsum(dO O)),
// dK += dS^T Q scale in tile-sized buffers, and dQ += dS K scale. The ranges are split as the
// shape asks (never by the thread count, so sums are the same on any machine); parts that
// share an output sum into their own buffers, added in order at the end.
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
    // taller query tiles over short key rows, as in the forward
    const int64_t gbq = kGradBlockQ * std::max<int64_t>(1, kGradBlockK / std::max<int64_t>(1, std::min(s.nk, kGradBlockK)));
    const int64_t qTiles = (s.nq + gbq - 1) / gbq;
    // At least 8 units in all where the shape allows it (2-16 threads stay busy): a head's keys
    // split into kParts ranges of key blocks, and where there are too few key blocks (cross-
    // attention over 77 prompt tokens has one), its queries into qParts ranges of query tiles.
    // Parts along the keys each sum their own dQ, parts along the queries their own dK and dV
    // (both small where they are used); the parts are then added in order.
    const int64_t target = std::max<int64_t>(1, (8 + bh - 1) / bh);
    const int64_t kParts = std::min(kBlocks, target);
    const int64_t qParts = std::min(qTiles, (target + kParts - 1) / kParts);
    Eigen::VectorXf dqParts = Eigen::VectorXf::Zero(kParts > 1 ? kParts * bh * s.nq * s.d : 0);
    Eigen::VectorXf dkParts = Eigen::VectorXf::Zero(qParts > 1 ? qParts * bh * s.nk * s.d : 0);
    Eigen::VectorXf dvParts = Eigen::VectorXf::Zero(qParts > 1 ? qParts * bh * s.nk * s.dv : 0);
    if (kParts == 1) dq->flat<float>().setZero();
    auto work = [&](int64_t begin, int64_t end) {
      // (aligned storage, as in the forward)
      const int64_t bk = std::min(s.nk, kGradBlockK);
      RowMat dkAcc(bk, s.d), dvAcc(bk, s.dv), qs(gbq, s.d), pBuf(gbq, bk), dsBuf(gbq, bk);
      for (int64_t u = begin; u < end; ++u) {
        const int64_t head = u / (kParts * qParts), kPart = (u / qParts) % kParts, qPart = u % qParts;
        const int64_t b = head / s.heads, h = head % s.heads;
        const int64_t kb0 = kBlocks * kPart / kParts, kb1 = kBlocks * (kPart + 1) / kParts;
        const int64_t qt0 = qTiles * qPart / qParts, qt1 = qTiles * (qPart + 1) / qParts;
        for (int64_t kbi = kb0; kbi < kb1; ++kbi) {
          const int64_t j0 = kbi * kGradBlockK, m = std::min(kGradBlockK, s.nk - j0);
          HeadView kb(kp + (b * s.nk + j0) * s.qStride() + h * s.d, m, s.d, Stride(s.qStride()));
          HeadView vb(vp + (b * s.nk + j0) * s.vStride() + h * s.dv, m, s.dv, Stride(s.vStride()));
          auto dkm = dkAcc.topRows(m);
          auto dvm = dvAcc.topRows(m);
          dkm.setZero();
          dvm.setZero();
          for (int64_t qt = qt0; qt < qt1; ++qt) {
            const int64_t i0 = qt * gbq, n = std::min(gbq, s.nq - i0);
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
            if (kParts == 1) {
              HeadOut dqb(dqp + (b * s.nq + i0) * s.qStride() + h * s.d, n, s.d, Stride(s.qStride()));
              dqb.noalias() += ds * kb;
            } else {
              Tile dqb(dqParts.data() + ((kPart * bh + head) * s.nq + i0) * s.d, n, s.d);
              dqb.noalias() += ds * kb;
            }
          }
          if (qParts == 1) {
            HeadOut(dkp + (b * s.nk + j0) * s.qStride() + h * s.d, m, s.d, Stride(s.qStride())) = dkm;
            HeadOut(dvp + (b * s.nk + j0) * s.vStride() + h * s.dv, m, s.dv, Stride(s.vStride())) = dvm;
          } else {
            Tile(dkParts.data() + ((qPart * bh + head) * s.nk + j0) * s.d, m, s.d) = dkm;
            Tile(dvParts.data() + ((qPart * bh + head) * s.nk + j0) * s.dv, m, s.dv) = dvm;
          }
        }
      }
    };
    const int64_t cost = gbq * (qTiles / qParts + 1) * kGradBlockK * (kBlocks / kParts + 1) * (4 * s.d + 4 * s.dv + 12);
    tensorflow::Shard(workers->num_threads, workers->workers, bh * kParts * qParts, cost, work);
    // the parts summed in order, and dQ's scale
    auto sumParts = [&](float* out, int64_t rows, int64_t width, int64_t stride, const Eigen::VectorXf& parts, int64_t count, float factor) {
      for (int64_t head = 0; head < bh; ++head) {
        const int64_t b = head / s.heads, h = head % s.heads;
        HeadOut o(out + b * rows * stride + h * width, rows, width, Stride(stride));
        if (count > 1) {
          o = Tile(const_cast<float*>(parts.data()) + head * rows * width, rows, width);
          for (int64_t part = 1; part < count; ++part) o += Tile(const_cast<float*>(parts.data()) + (part * bh + head) * rows * width, rows, width);
        }
        if (factor != 1.0f) o *= factor;
      }
    };
    sumParts(dqp, s.nq, s.d, s.qStride(), dqParts, kParts, scale);
    if (qParts > 1) {
      sumParts(dkp, s.nk, s.d, s.qStride(), dkParts, qParts, 1.0f);
      sumParts(dvp, s.nk, s.dv, s.vStride(), dvParts, qParts, 1.0f);
    }
  }

 private:
  int64_t heads_;
  float scale_;
};

REGISTER_KERNEL_BUILDER(Name("RassAttention").Device(tensorflow::DEVICE_CPU), RassAttentionOp);
REGISTER_KERNEL_BUILDER(Name("RassAttentionGrad").Device(tensorflow::DEVICE_CPU), RassAttentionGradOp);

}  // namespace
