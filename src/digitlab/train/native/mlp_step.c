/* Native kernels for digitlab's fused mlp step (digitlab/train/fused_mlp.py).

   Why: after the two large products of a training step (x W1^T forward, dh^T x backward), which torch
   runs at the CPU's peak, what is left is small work spread over a dozen torch calls: the 10-output
   layer, softmax and its gradient, the ReLU mask, the casts to and from bf16 and the optimizer update.
   At a few microseconds of dispatch each plus a pass over memory each, they cost as much again as the
   products' non-peak part. Here they are two calls a step: `mlp_head` (everything between the two
   products) and `mlp_rmsprop` (the update, reading the product's gradient in its own dtype and writing
   the weights' bf16 copy in the same pass). Two more prepare the training images once per run
   (`mlp_live_columns`, `mlp_gather`).

   Built on first use by digitlab/train/native/__init__.py with the machine's C compiler and OpenMP.
   Loaded into a process where torch already loaded its OpenMP runtime (same soname, libgomp.so.1),
   so these loops share torch's thread pool instead of competing with it.

   Layouts (all row-major, contiguous):
     h      m x H     layer 1's pre-activations from the forward product; bf16 or float32 (`bf16` flag)
     w2     C x H     layer 2's float32 master weights; b2: C
     target m x C     float32 targets (one-hot, or smoothed)
     logits m x C     out: float32 logits (the epoch's record: accuracy is scored from it when asked)
     loss   m         out: each row's cross-entropy against its target (for the running loss)
     g2     C x H     out: float32 gradient of w2; gb2: C, of b2
     dh     m x H     out: gradient of the pre-activations, in h's dtype (feeds the backward product)
     hf, d  m x H, m x C   float32 scratch (the ReLU'd activations, dloss/dlogits)
   The gradient is of the mean cross-entropy over the m rows: d = (softmax(logits) - target) / m. */

#include <math.h>
#include <stdint.h>
#include <string.h>

#define LANES 16
#define MAX_CLASSES 16

typedef float vf __attribute__((vector_size(64), aligned(4), may_alias));
typedef uint32_t vu __attribute__((vector_size(64)));
typedef uint16_t vbf __attribute__((vector_size(32), aligned(2), may_alias));

static inline vf as_vf(vu u) { vf f; memcpy(&f, &u, sizeof f); return f; }
static inline vu as_vu(vf f) { vu u; memcpy(&u, &f, sizeof u); return u; }

/* 16 values of a bf16 or float32 array at p + i, as float32. */
static inline vf load16(const void *p, long i, int bf16) {
    if (bf16) return as_vf(__builtin_convertvector(*(const vbf *)((const uint16_t *)p + i), vu) << 16);
    return *(const vf *)((const float *)p + i);
}

/* float32 -> bf16, rounding to nearest even as torch does; NaN stays NaN (never rounds into inf). */
static inline vbf to_bf16(vf f) {
    vu u = as_vu(f);
    vu rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    vu is_num = (vu)(f == f);
    return __builtin_convertvector((rounded & is_num) | (0x7FC0u & ~is_num), vbf);
}

static inline float bf16_to_float(uint16_t b) { return as_vf((vu){(uint32_t)b << 16})[0]; }
static inline uint16_t float_to_bf16(float f) { return to_bf16((vf){f})[0]; }

static inline void store16(void *p, long i, vf f, int bf16) {
    if (bf16) *(vbf *)((uint16_t *)p + i) = to_bf16(f);
    else *(vf *)((float *)p + i) = f;
}

/* The sum of the 16 lanes, as a tree: halves added three times (a chain of 16 scalar adds is 4x slower).
   __builtin_shufflevector is GCC 12+ and clang; older compilers get the same tree from a lane array. */
#if defined(__clang__) || __GNUC__ >= 12
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf4 __attribute__((vector_size(16)));
static inline float hsum(vf v) {
    vf8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
            __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    vf4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}
#else
static inline float hsum(vf v) {
    float lane[LANES];
    memcpy(lane, &v, sizeof lane);
    for (int half = LANES / 2; half > 0; half /= 2)
        for (int l = 0; l < half; l++) lane[l] += lane[l + half];
    return lane[0];
}
#endif

/* One row: ReLU, logits, softmax gradient, and dh = (d W2) where h > 0. C is a constant where inlined. */
static inline __attribute__((always_inline)) void head_row(
    int H, int C, int bf16, const void *h, float *hf, const float *w2, const float *b2, const float *target,
    float *logits, float *d, void *dh, float *loss, float inv_m) {
    vf acc[MAX_CLASSES];
    for (int c = 0; c < C; c++) acc[c] = (vf){0};
    for (int j = 0; j < H; j += LANES) {
        vf x = load16(h, j, bf16);
        /* ReLU as torch's: keep x unless x <= 0, so a NaN passes through and shows in the loss */
        x = as_vf(as_vu(x) & ~(vu)(x <= 0.f));
        *(vf *)(hf + j) = x;
        for (int c = 0; c < C; c++) acc[c] += *(const vf *)(w2 + (long)c * H + j) * x;
    }
    float top = -INFINITY, total = 0.f;
    for (int c = 0; c < C; c++) {
        logits[c] = hsum(acc[c]) + b2[c];
        top = logits[c] > top ? logits[c] : top;
    }
    for (int c = 0; c < C; c++) total += (d[c] = expf(logits[c] - top));
    /* the row's cross-entropy, -sum_c target_c log softmax_c, for the epoch's running loss */
    float log_total = logf(total), row_loss = 0.f;
    for (int c = 0; c < C; c++) row_loss += target[c] * (top + log_total - logits[c]);
    *loss = row_loss;
    for (int c = 0; c < C; c++) d[c] = (d[c] / total - target[c]) * inv_m;
    vf dv[MAX_CLASSES];  /* d broadcast once, not once per block */
    for (int c = 0; c < C; c++) dv[c] = (vf){0} + d[c];
    for (int j = 0; j < H; j += LANES) {
        /* two partial sums: half the dependent chain of fused multiply-adds */
        vf g = dv[0] * *(const vf *)(w2 + j), g_odd = (vf){0};
        for (int c = 1; c < C; c++) {
            vf term = dv[c] * *(const vf *)(w2 + (long)c * H + j);
            if (c % 2) g_odd += term; else g += term;
        }
        g += g_odd;
        vf x = *(const vf *)(hf + j);
        store16(dh, j, as_vf(as_vu(g) & (vu)(x > 0.f)), bf16);  /* threshold_backward(g, h, 0) */
    }
}

/* g2[c, j:j+16] = sum_i d[i, c] hf[i, j:j+16], the classes' sums side by side in registers. */
static inline __attribute__((always_inline)) void w2_grad_block(
    int m, int H, int C, int j, const float *hf, const float *d, float *g2) {
    vf acc[MAX_CLASSES];
    for (int c = 0; c < C; c++) acc[c] = (vf){0};
    for (int i = 0; i < m; i++) {
        vf x = *(const vf *)(hf + (long)i * H + j);
        for (int c = 0; c < C; c++) acc[c] += d[(long)i * C + c] * x;
    }
    for (int c = 0; c < C; c++) *(vf *)(g2 + (long)c * H + j) = acc[c];
}

/* The head's work for one thread of a team: rows, then blocks of g2, split across the team's threads.
   Called inside a parallel region, or alone, where the worksharing directives run everything on one thread.
   The 10-class rows are compiled with C as a constant: the branch is here because OpenMP outlines a
   parallel region's body before constants could reach it. */
static void head_team(int m, int H, int C, int bf16, const void *h, const float *w2, const float *b2,
                      const float *target, float *logits, float *loss, float *g2, float *gb2, void *dh, float *hf,
                      float *d) {
    const float inv_m = 1.0f / (float)m;
    const long row_bytes = (long)H * (bf16 ? 2 : 4);
    #pragma omp for schedule(static)
    for (int i = 0; i < m; i++) {
        const void *hi = (const char *)h + i * row_bytes;
        void *dhi = (char *)dh + i * row_bytes;
        float *hfi = hf + (long)i * H, *li = logits + (long)i * C, *di = d + (long)i * C;
        const float *ti = target + (long)i * C;
        if (C == 10 && bf16) head_row(H, 10, 1, hi, hfi, w2, b2, ti, li, di, dhi, loss + i, inv_m);
        else if (C == 10) head_row(H, 10, 0, hi, hfi, w2, b2, ti, li, di, dhi, loss + i, inv_m);
        else head_row(H, C, bf16, hi, hfi, w2, b2, ti, li, di, dhi, loss + i, inv_m);
    }
    #pragma omp for schedule(static)
    for (int j = 0; j < H; j += LANES) {
        if (C == 10) w2_grad_block(m, H, 10, j, hf, d, g2);
        else w2_grad_block(m, H, C, j, hf, d, g2);
    }
    #pragma omp single
    for (int c = 0; c < C; c++) {
        float s = 0.f;
        for (int i = 0; i < m; i++) s += d[(long)i * C + c];
        gb2[c] = s;
    }
}

/* Everything between the two large products, on `threads` threads. H must be a multiple of 16 and C at
   most 16 (`mlp_supported` tells). With threads <= 1 no parallel region is entered at all: a process
   forked from one that ran OpenMP threads (the cross-validation workers) must not wake libgomp's pool. */
void mlp_head(int m, int H, int C, int bf16, const void *h, const float *w2, const float *b2, const float *target,
              float *logits, float *loss, float *g2, float *gb2, void *dh, float *hf, float *d, int threads) {
    if (threads > 1) {
        #pragma omp parallel num_threads(threads)
        head_team(m, H, C, bf16, h, w2, b2, target, logits, loss, g2, gb2, dh, hf, d);
    } else {
        head_team(m, H, C, bf16, h, w2, b2, target, logits, loss, g2, gb2, dh, hf, d);
    }
}

int mlp_supported(int H, int C) { return H > 0 && H % LANES == 0 && C > 0 && C <= MAX_CLASSES; }

/* Keras's RMSprop on len weights w and averages v, their gradients g (bf16 or float32):
       g += wd w;  v = rho v + (1 - rho) g^2;  w -= lr g / sqrt(v + eps)
   and, with cw non-null, the weights' bf16 copy that the next step's products read, in the same pass. */
static inline __attribute__((always_inline)) void rmsprop_span(
    long len, int bf16, const void *g_in, float *w, float *v, uint16_t *cw, float lr, float rho, float eps, float wd) {
    const float keep = 1.f - rho;
    long i = 0;
    for (; i + LANES <= len; i += LANES) {
        vf wi = *(vf *)(w + i);
        vf g = load16(g_in, i, bf16);
        if (wd != 0.f) g += wd * wi;  /* as torch and KerasRMSprop: no term at all without decay */
        vf vi = rho * *(vf *)(v + i) + keep * g * g;
        *(vf *)(v + i) = vi;
        vf root;
        for (int l = 0; l < LANES; l++) root[l] = sqrtf(vi[l] + eps);
        wi -= lr * g / root;
        *(vf *)(w + i) = wi;
        if (cw) *(vbf *)(cw + i) = to_bf16(wi);
    }
    for (; i < len; i++) {
        float g = bf16 ? bf16_to_float(((const uint16_t *)g_in)[i]) : ((const float *)g_in)[i];
        if (wd != 0.f) g += wd * w[i];
        v[i] = rho * v[i] + keep * g * g;
        w[i] -= lr * g / sqrtf(v[i] + eps);
        if (cw) cw[i] = float_to_bf16(w[i]);
    }
}

/* The update of the flat weights w[0:n], averages v[0:n] (see rmsprop_span), on `threads` threads (see
   mlp_head). The gradient of w[0:n1] (layer 1) is g1, in the backward product's dtype; that of w[n1:n]
   (layer 2) is g_rest, float32. Layer 1 is split in blocks across the threads; layer 2 (a few thousand
   values) goes to one. */
static void rmsprop_team(long n1, long n, int bf16, const void *g1, const float *g_rest, float *w, float *v,
                         uint16_t *cw, float lr, float rho, float eps, float wd) {
    const long block = 4096;
    #pragma omp for schedule(static) nowait
    for (long start = 0; start < n1; start += block) {
        long len = n1 - start < block ? n1 - start : block;
        const void *g = (const char *)g1 + start * (bf16 ? 2 : 4);
        uint16_t *c = cw ? cw + start : NULL;
        if (bf16) rmsprop_span(len, 1, g, w + start, v + start, c, lr, rho, eps, wd);
        else rmsprop_span(len, 0, g, w + start, v + start, c, lr, rho, eps, wd);
    }
    #pragma omp single
    rmsprop_span(n - n1, 0, g_rest, w + n1, v + n1, cw ? cw + n1 : NULL, lr, rho, eps, wd);
}

void mlp_rmsprop(long n1, long n, int bf16, const void *g1, const float *g_rest, float *w, float *v, uint16_t *cw,
                 float lr, float rho, float eps, float wd, int threads) {
    if (threads > 1) {
        #pragma omp parallel num_threads(threads)
        rmsprop_team(n1, n, bf16, g1, g_rest, w, v, cw, lr, rho, eps, wd);
    } else {
        rmsprop_team(n1, n, bf16, g1, g_rest, w, v, cw, lr, rho, eps, wd);
    }
}

/* Training rows without their blank pixels: out[i] = [the live pixels of src[rows[i]] | 1]. The live
   pixels come as runs of neighbours, (first source column, first output column, length) triples, copied
   with memcpy; the last output column is the constant 1 that carries layer 1's bias. elem_size is 2
   (bf16) or 4 (float32). */
static void gather_team(long n, const int64_t *rows, const char *src, long src_cols, int elem_size,
                        const int32_t *runs, int n_runs, char *out, long out_cols) {
    const long src_row = src_cols * elem_size, out_row = out_cols * elem_size;
    const uint16_t one_bf16 = 0x3F80;
    const float one_f32 = 1.0f;
    #pragma omp for schedule(static)
    for (long i = 0; i < n; i++) {
        const char *s = src + rows[i] * src_row;
        char *o = out + i * out_row;
        for (int r = 0; r < n_runs; r++)
            memcpy(o + (long)runs[3 * r + 1] * elem_size, s + (long)runs[3 * r] * elem_size,
                   (size_t)runs[3 * r + 2] * elem_size);
        memcpy(o + out_row - elem_size, elem_size == 2 ? (const void *)&one_bf16 : (const void *)&one_f32, elem_size);
    }
}

void mlp_gather(long n, const int64_t *rows, const void *src, long src_cols, int elem_size, const int32_t *runs,
                int n_runs, void *out, long out_cols, int threads) {
    if (threads > 1) {
        #pragma omp parallel num_threads(threads)
        gather_team(n, rows, src, src_cols, elem_size, runs, n_runs, out, out_cols);
    } else {
        gather_team(n, rows, src, src_cols, elem_size, runs, n_runs, out, out_cols);
    }
}

/* live[j] = 1 where column j of the n x cols matrix src (bf16 or float32) holds a value other than 0 or -0
   in some row, else 0: the pixels the fused step keeps. One pass over src, rows split across threads;
   cols is at most MAX_LIVE_COLUMNS. */
#define MAX_LIVE_COLUMNS 4096
static void live_team(long n, long cols, int elem_size, const void *src, uint8_t *live) {
    uint32_t seen[MAX_LIVE_COLUMNS] = {0};  /* this thread's OR of each column's bits, the sign dropped */
    #pragma omp for schedule(static)
    for (long i = 0; i < n; i++) {
        if (elem_size == 2) {
            const uint16_t *row = (const uint16_t *)src + i * cols;
            for (long j = 0; j < cols; j++) seen[j] |= row[j] & 0x7FFFu;
        } else {
            const uint32_t *row = (const uint32_t *)src + i * cols;
            for (long j = 0; j < cols; j++) seen[j] |= row[j] & 0x7FFFFFFFu;
        }
    }
    #pragma omp critical
    for (long j = 0; j < cols; j++) live[j] |= seen[j] != 0;
}

int mlp_live_columns(long n, long cols, int elem_size, const void *src, uint8_t *live, int threads) {
    if (cols > MAX_LIVE_COLUMNS) return 0;
    memset(live, 0, (size_t)cols);
    if (threads > 1) {
        #pragma omp parallel num_threads(threads)
        live_team(n, cols, elem_size, src, live);
    } else {
        live_team(n, cols, elem_size, src, live);
    }
    return 1;
}
