/* Elementwise tanh, exp, log and sigmoid with PyTorch's bits.
 *
 * torch 1.13's CPU kernels (capability AVX2, which needs AVX2 and FMA) do
 * not call libm for these:
 *  - tanh, exp and log go through SLEEF's 1-ulp vector functions
 *    (Sleef_tanhf8_u10 and friends, Sleef_*d4_u10 for float64) for every
 *    element, the last partial vector included: lane by lane the same bits
 *    wherever an element sits;
 *  - sigmoid computes 1 / (exp(0 - x) + 1) with SLEEF's exp on blocks of
 *    two vectors (16 floats, 8 doubles) and 1 / (1 + exp(-x)) with libm's
 *    expf/exp on the elements after the last whole block;
 *  - pow (other than the exponents torch special-cases, kernels.h) is
 *    SLEEF's pow on those blocks and libm's on the rest: powf for a tensor
 *    exponent, pow in double for a Python number.
 * On Debian both PyTorch and bpviz load the system's libsleef, so calling it
 * gives PyTorch's numbers bit for bit (checked against torch on 6 million
 * inputs and every block remainder; tests/torch/vmath_reference.py). On a
 * CPU without AVX2 or FMA, or with ATEN_CPU_CAPABILITY=default, torch's
 * kernels use libm's float and double functions element by element, and so
 * does this file. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "vmath.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define VM_SLEEF 1
#define VM_AVX2 __attribute__((target("avx2,fma")))
/* libsleef's dispatching entry points; sleef.h declares them only to code
 * compiled for AVX, and only the functions below are. */
VM_AVX2 __m256 Sleef_tanhf8_u10(__m256);
VM_AVX2 __m256 Sleef_expf8_u10(__m256);
VM_AVX2 __m256 Sleef_logf8_u10(__m256);
VM_AVX2 __m256d Sleef_tanhd4_u10(__m256d);
VM_AVX2 __m256d Sleef_expd4_u10(__m256d);
VM_AVX2 __m256d Sleef_logd4_u10(__m256d);
VM_AVX2 __m256 Sleef_powf8_u10(__m256, __m256);
VM_AVX2 __m256d Sleef_powd4_u10(__m256d, __m256d);
#endif

/* Whether torch would run its AVX2 kernels here (cached): the CPU has AVX2
 * and FMA, and ATEN_CPU_CAPABILITY, PyTorch's own switch, does not ask for
 * its portable "default" kernels. */
static bool vm_avx2(void) {
#ifdef VM_SLEEF
    /* atomic: the engine's threads ask too (the same answer for all) */
    static atomic_int have = -1;
    int h = atomic_load_explicit(&have, memory_order_relaxed);
    if (h < 0) {
        const char *cap = getenv("ATEN_CPU_CAPABILITY");
        __builtin_cpu_init();
        h = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
            !(cap && strcmp(cap, "default") == 0);
        atomic_store_explicit(&have, h, memory_order_relaxed);
    }
    return h;
#else
    return false;
#endif
}

bool bpv_vmath_sleef(void) { return vm_avx2(); }

/* ---- libm: the elements torch computes one at a time --------------------- */

static double scalar_f32(bpv_vfn fn, float x) {
    switch (fn) {
    case BPV_VF_TANH: return tanhf(x);
    case BPV_VF_EXP: return expf(x);
    case BPV_VF_LOG: return logf(x);
    case BPV_VF_SIGMOID: return 1.0f / (1.0f + expf(-x));
    }
    return NAN;
}

static double scalar_f64(bpv_vfn fn, double x) {
    switch (fn) {
    case BPV_VF_TANH: return tanh(x);
    case BPV_VF_EXP: return exp(x);
    case BPV_VF_LOG: return log(x);
    case BPV_VF_SIGMOID: return 1.0 / (1.0 + exp(-x));
    }
    return NAN;
}

#ifdef VM_SLEEF
/* ---- SLEEF: whole vectors -------------------------------------------------
 * The values are float32 numbers held as doubles: narrowing them is exact. */

VM_AVX2 static __m256 sleef_f32(bpv_vfn fn, __m256 v) {
    switch (fn) {
    case BPV_VF_TANH: return Sleef_tanhf8_u10(v);
    case BPV_VF_EXP: return Sleef_expf8_u10(v);
    case BPV_VF_LOG: return Sleef_logf8_u10(v);
    case BPV_VF_SIGMOID: {
        const __m256 one = _mm256_set1_ps(1.0f);
        __m256 e = Sleef_expf8_u10(_mm256_sub_ps(_mm256_setzero_ps(), v));
        return _mm256_div_ps(one, _mm256_add_ps(e, one));
    }
    }
    return v;
}

VM_AVX2 static __m256d sleef_f64(bpv_vfn fn, __m256d v) {
    switch (fn) {
    case BPV_VF_TANH: return Sleef_tanhd4_u10(v);
    case BPV_VF_EXP: return Sleef_expd4_u10(v);
    case BPV_VF_LOG: return Sleef_logd4_u10(v);
    case BPV_VF_SIGMOID: {
        const __m256d one = _mm256_set1_pd(1.0);
        __m256d e = Sleef_expd4_u10(_mm256_sub_pd(_mm256_setzero_pd(), v));
        return _mm256_div_pd(one, _mm256_add_pd(e, one));
    }
    }
    return v;
}

/* o[i] for i < n: whole vectors, then the rest through a zero-padded one. */
VM_AVX2 static void vec_f32(bpv_vfn fn, const double *x, double *o, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(x + i + 4)),
                                   _mm256_cvtpd_ps(_mm256_loadu_pd(x + i)));
        v = sleef_f32(fn, v);
        _mm256_storeu_pd(o + i, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        _mm256_storeu_pd(o + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    if (i < n) {
        float b[8] = {0};
        for (int64_t j = i; j < n; j++) b[j - i] = (float)x[j];
        _mm256_storeu_ps(b, sleef_f32(fn, _mm256_loadu_ps(b)));
        for (int64_t j = i; j < n; j++) o[j] = b[j - i];
    }
}

/* vec_f32 over float32 storage: no conversions */
VM_AVX2 static void vec_f32s(bpv_vfn fn, const float *x, float *o, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, sleef_f32(fn, _mm256_loadu_ps(x + i)));
    if (i < n) {
        float b[8] = {0};
        memcpy(b, x + i, (size_t)(n - i) * sizeof *b);
        _mm256_storeu_ps(b, sleef_f32(fn, _mm256_loadu_ps(b)));
        memcpy(o + i, b, (size_t)(n - i) * sizeof *b);
    }
}

VM_AVX2 static void vec_f64(bpv_vfn fn, const double *x, double *o, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(o + i, sleef_f64(fn, _mm256_loadu_pd(x + i)));
    if (i < n) {
        double b[4] = {0};
        for (int64_t j = i; j < n; j++) b[j - i] = x[j];
        _mm256_storeu_pd(b, sleef_f64(fn, _mm256_loadu_pd(b)));
        for (int64_t j = i; j < n; j++) o[j] = b[j - i];
    }
}
#endif

void bpv_vmath(bpv_vfn fn, bpv_dtype dt, const double *x, double *o, int64_t n) {
    int64_t nv = 0; /* elements SLEEF computes */
#ifdef VM_SLEEF
    if (vm_avx2()) {
        nv = fn != BPV_VF_SIGMOID ? n : bpv_vmath_blocks(dt, n); /* sigmoid: whole blocks */
        if (dt == BPV_F32) vec_f32(fn, x, o, nv);
        else vec_f64(fn, x, o, nv);
    }
#endif
    if (dt == BPV_F32)
        for (int64_t i = nv; i < n; i++) o[i] = scalar_f32(fn, (float)x[i]);
    else
        for (int64_t i = nv; i < n; i++) o[i] = scalar_f64(fn, x[i]);
}

void bpv_vmath32(bpv_vfn fn, const float *x, float *o, int64_t n) {
    int64_t nv = 0;
#ifdef VM_SLEEF
    if (vm_avx2()) {
        nv = fn != BPV_VF_SIGMOID ? n : bpv_vmath_blocks(BPV_F32, n);
        vec_f32s(fn, x, o, nv);
    }
#endif
    for (int64_t i = nv; i < n; i++) o[i] = (float)scalar_f32(fn, x[i]);
}

#ifdef VM_SLEEF
VM_AVX2 static double sleef_pow(bpv_dtype dt, double a, double b) {
    if (dt == BPV_F32)
        return _mm256_cvtss_f32(Sleef_powf8_u10(_mm256_set1_ps((float)a), _mm256_set1_ps((float)b)));
    return _mm256_cvtsd_f64(Sleef_powd4_u10(_mm256_set1_pd(a), _mm256_set1_pd(b)));
}

/* fn of one value through SLEEF: a lane of a vector, as in a whole block */
VM_AVX2 static double sleef_lane(bpv_vfn fn, bpv_dtype dt, double x) {
    if (dt == BPV_F32) return _mm256_cvtss_f32(sleef_f32(fn, _mm256_set1_ps((float)x)));
    return _mm256_cvtsd_f64(sleef_f64(fn, _mm256_set1_pd(x)));
}
#endif

double bpv_vmath_sigmoid(bpv_dtype dt, double x, bool vec) {
#ifdef VM_SLEEF
    if (vec && vm_avx2()) return sleef_lane(BPV_VF_SIGMOID, dt, x);
#endif
    return dt == BPV_F32 ? scalar_f32(BPV_VF_SIGMOID, (float)x) : scalar_f64(BPV_VF_SIGMOID, x);
}

/* Both of torch's builds run their elementwise loops two 32-byte vectors at
 * a time and the rest one element at a time; only what a block computes
 * differs (SLEEF in the AVX2 build, the generic vector's std:: calls in the
 * portable one). */
int64_t bpv_vmath_blocks(bpv_dtype dt, int64_t n) {
    return n - n % (dt == BPV_F32 ? 16 : 8);
}

double bpv_vmath_pow(bpv_dtype dt, double a, double b, bool vec, bool scalar) {
#ifdef VM_SLEEF
    if (vec && vm_avx2()) return sleef_pow(dt, a, b);
#endif
    if (dt != BPV_F32) return pow(a, b);
    /* the portable build's vector pow is std::pow(float, float), the
     * exponent cast to float; one element at a time, std::pow(float,
     * double) for a Python number, std::pow(float, float) otherwise */
    return scalar && !vec ? (double)(float)pow(a, b) : (double)powf((float)a, (float)b);
}

double bpv_vmath1(bpv_vfn fn, bpv_dtype dt, double x) {
    double o;
    bpv_vmath(fn, dt, &x, &o, 1);
    return o;
}
