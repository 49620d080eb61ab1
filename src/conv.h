/* 2-D convolution and 2-D max and average pooling, forward and backward,
 * with PyTorch 1.13's CPU numbers bit for bit: the slow_conv2d path (oneDNN
 * off, or float64, which oneDNN never takes), im2col and reference BLAS
 * gemms, and the max_pool2d / avg_pool2d kernels for NCHW tensors.
 *
 * What torch computes, per sample (tests/torch/conv_reference.py checks it):
 *  - y[o][p]  starts from bias[o] (or +0.0) and adds w[o][l] * col[l][p] for
 *    l = (c, ki, kj) in order, every product and sum rounded to the dtype;
 *  - gx       the column gradient colg[l][p] = sum over o in order, from
 *    +0.0, of w[o][l] * gy[o][p]; then each gx element is +0.0 plus its
 *    columns' terms in (ki, kj) order;
 *  - gw[o][l] the sample's sum over p in order, from +0.0, of
 *    gy[o][p] * col[l][p], added to the running gw (+0.0 at first) sample
 *    by sample;
 *  - gb[o]    gy summed over (n, oh, ow) by torch's sum kernel: per sample
 *    a cascade sum over the plane (csum.h), added sample by sample to +0.0;
 *    one cascade over everything when o == 1, column sums over n when the
 *    plane is 1 x 1.
 * The 64 functions take the arithmetic dt: BPV_F64 computes in double (the
 * float64 path), BPV_F32 rounds each step to float32 exactly where the
 * float32 path rounds, so they give the 32 functions' bits over double
 * storage. Arrays are contiguous and row-major; outputs must not overlap
 * inputs. Large batches are split over the engine's threads (pool.h) by
 * samples, weight columns, channels or planes: the same bits. */
#ifndef BPV_CONV_H
#define BPV_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops.h"

typedef struct bpv_conv2d_dims {
    int64_t n;            /* samples (1 for one unbatched sample) */
    int64_t c, h, w;      /* input channels, height, width */
    int64_t o, kh, kw;    /* output channels, kernel height, width */
    int64_t stride, pad;  /* the same along both axes */
    int64_t oh, ow;       /* (h + 2*pad - kh) / stride + 1, likewise ow */
} bpv_conv2d_dims;

/* Sets oh and ow from the other fields; false (d unchanged) when the
 * padded input is smaller than the kernel or a size is not positive. */
bool bpv_conv2d_dims_fill(bpv_conv2d_dims *d);

/* The dims of conv2d(x, w, stride, pad) from the shapes: x [c,h,w] (one
 * sample) or [n,c,h,w], w [o,c,kh,kw]; false when they do not fit. One
 * place for the engine's kernels and the compiler's scratch sizing. */
bool bpv_conv2d_dims_of(const bpv_shape *x, const bpv_shape *w, int64_t stride, int64_t pad,
                        bpv_conv2d_dims *d);

/* Elements of scratch space (of the storage type: floats for the 32
 * functions, doubles for the 64 ones) that the conv2d functions below
 * need: one thread's, and for a batch the buffers in which the threads put
 * each sample's weight gradient (up to 1M elements). */
size_t bpv_conv2d_work(const bpv_conv2d_dims *d);

/* x [n,c,h,w], w [o,c,kh,kw], b [o] or NULL -> y [n,o,oh,ow] (written). */
void bpv_conv2d_fwd32(const bpv_conv2d_dims *d, const float *x, const float *w, const float *b,
                      float *y, float *work);
/* gy [n,o,oh,ow], w -> gx [n,c,h,w] (written, not added to). */
void bpv_conv2d_bwd_x32(const bpv_conv2d_dims *d, const float *gy, const float *w, float *gx,
                        float *work);
/* gy, x -> gw [o,c,kh,kw] (written): the whole batch's gradient, summed
 * sample by sample as torch accumulates it. */
void bpv_conv2d_bwd_w32(const bpv_conv2d_dims *d, const float *gy, const float *x, float *gw,
                        float *work);
/* gy -> gb [o] (written). */
void bpv_conv2d_bwd_b32(const bpv_conv2d_dims *d, const float *gy, float *gb);

/* The same four over double storage, computing in dt. */
void bpv_conv2d_fwd64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *x, const double *w,
                      const double *b, double *y, double *work);
void bpv_conv2d_bwd_x64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *gy,
                        const double *w, double *gx, double *work);
void bpv_conv2d_bwd_w64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *gy,
                        const double *x, double *gw, double *work);
void bpv_conv2d_bwd_b64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *gy, double *gb);

/* Pooling over k x k windows, as torch's max_pool2d / avg_pool2d in floor
 * mode: window (oy, ox) starts at row oy*stride - pad and column
 * ox*stride - pad; oh = (h + 2*pad - k) / stride + 1, likewise ow; pad is
 * at most k / 2. Padding is never read: max pooling skips it, average
 * pooling counts it in the divisor (count_include_pad), which is k*k. */
typedef struct bpv_pool2d_dims {
    int64_t n, c, h, w, k, oh, ow;
    int64_t stride, pad;
} bpv_pool2d_dims;

/* The dims of a pooling of x [c,h,w] or [n,c,h,w] with kernel k, stride
 * (NAN: the kernel, as torch's stride=None) and padding. */
bpv_pool2d_dims bpv_pool2d_dims_of(const bpv_shape *x, int64_t k, double stride, int64_t pad);

/* x [n,c,h,w] -> y [n,c,oh,ow]: each window's maximum, scanned row by row;
 * a NaN counts as the maximum (the window's last NaN); a later equal value
 * does not replace an earlier one (max(-0.0, +0.0) is -0.0). */
void bpv_maxpool2d_fwd32(const bpv_pool2d_dims *d, const float *x, float *y);
/* x, gy [n,c,oh,ow] -> gx [n,c,h,w] (written): +0.0, to which each window
 * adds its gy at the element its forward picked, windows in order (they
 * overlap when stride < k). The pick is recomputed from x, so no index
 * buffer is kept. */
void bpv_maxpool2d_bwd32(const bpv_pool2d_dims *d, const float *x, const float *gy, float *gx);
/* x -> y: +0.0 + (the window summed row by row from +0.0) / (k * k). */
void bpv_avgpool2d_fwd32(const bpv_pool2d_dims *d, const float *x, float *y);
/* gy -> gx (written): +0.0, to which each window adds gy / (k * k) over
 * its elements, windows in order. */
void bpv_avgpool2d_bwd32(const bpv_pool2d_dims *d, const float *gy, float *gx);

/* The same over double storage, computing in dt. */
void bpv_maxpool2d_fwd64(bpv_dtype dt, const bpv_pool2d_dims *d, const double *x, double *y);
void bpv_maxpool2d_bwd64(bpv_dtype dt, const bpv_pool2d_dims *d, const double *x,
                         const double *gy, double *gx);
void bpv_avgpool2d_fwd64(bpv_dtype dt, const bpv_pool2d_dims *d, const double *x, double *y);
void bpv_avgpool2d_bwd64(bpv_dtype dt, const bpv_pool2d_dims *d, const double *gy, double *gx);

#endif
