/* ---- real-valued kernels on @T@ activations (the engine's float@BITS@ path); NHWC maps, channels last ---- */

#if BNN_NEED_SIGN_@SU@
/* real -> packed sign bits per position: bit 1 (-1) iff x - thr < 0, i.e. x < thr (sign(0) = +1).
   Returns 1 when a NaN was met: it has no sign (the engine refuses it). */
static int bnn_sign_@S@(const @T@ *x, int32_t positions, int32_t c, const float *thr, uint32_t *y) {
    int32_t p, ch, cw = (c + 31) >> 5;
    int nan_seen = 0;
    for (p = 0; p < positions; p++, x += c, y += cw) {
        for (ch = 0; ch < cw; ch++) y[ch] = 0;
        for (ch = 0; ch < c; ch++) {
            @T@ v = x[ch];
            nan_seen |= v != v;
            y[ch >> 5] |= (uint32_t)(v < (thr ? (@T@)thr[ch] : (@T@)0)) << (ch & 31);
        }
    }
    return nan_seen;
}
#endif

#if BNN_NEED_AFFINE_@SU@
/* x * scale + shift per channel (batch norm in eval mode); y may be x. */
static void bnn_affine_@S@(const @T@ *x, int32_t positions, int32_t c, const float *scale, const float *shift, @T@ *y) {
    int32_t p, ch;
    for (p = 0; p < positions; p++, x += c, y += c) {
        for (ch = 0; ch < c; ch++) {
            @T@ t = x[ch] * (@T@)scale[ch];
            y[ch] = t + (@T@)shift[ch];
        }
    }
}
#endif

#if BNN_NEED_FDENSE_@SU@
/* y = x W^T + bias, W (count, f) float32, summed in order. */
static void bnn_fdense_@S@(const @T@ *x, int32_t f, const float *w, const float *bias, int32_t count, @T@ *y) {
    int32_t o, i;
    for (o = 0; o < count; o++, w += f) {
        @T@ acc = 0;
        for (i = 0; i < f; i++) {
            @T@ t = x[i] * (@T@)w[i];
            acc = acc + t;
        }
        y[o] = bias ? acc + (@T@)bias[o] : acc;
    }
}
#endif

#if BNN_NEED_FCONV_@SU@
/* Convolution of an NHWC map padded with pad; w: (count, kh, kw, c) float32; summed in (kh, kw, c) order. */
static void bnn_fconv_@S@(const @T@ *x, const bnn_geom_t *g, const float *w, const float *bias, @T@ pad, int32_t count,
                          @T@ *y) {
    int32_t oy, ox, o, i, j, ch;
    for (oy = 0; oy < g->oh; oy++) {
        for (ox = 0; ox < g->ow; ox++, y += count) {
            const float *wo = w;
            for (o = 0; o < count; o++) {
                @T@ acc = 0;
                for (i = 0; i < g->kh; i++) {
                    int32_t yy = oy * g->stride - g->top + i;
                    for (j = 0; j < g->kw; j++) {
                        int32_t xx = ox * g->stride - g->left + j;
                        int inside = yy >= 0 && yy < g->h && xx >= 0 && xx < g->w;
                        const @T@ *src = inside ? x + ((size_t)yy * (size_t)g->w + (size_t)xx) * (size_t)g->c : NULL;
                        for (ch = 0; ch < g->c; ch++, wo++) {
                            @T@ t = (src ? src[ch] : pad) * (@T@)*wo;
                            acc = acc + t;
                        }
                    }
                }
                y[o] = bias ? acc + (@T@)bias[o] : acc;
            }
        }
    }
}
#endif

#if BNN_NEED_MAXPOOL_@SU@
/* Max over kh x kw windows (no padding); NaN wins, as numpy.max. */
static void bnn_maxpool_@S@(const @T@ *x, const bnn_geom_t *g, @T@ *y) {
    int32_t oy, ox, i, j, ch;
    for (oy = 0; oy < g->oh; oy++) {
        for (ox = 0; ox < g->ow; ox++, y += g->c) {
            for (ch = 0; ch < g->c; ch++) {
                @T@ m = x[((size_t)(oy * g->stride) * (size_t)g->w + (size_t)(ox * g->stride)) * (size_t)g->c + (size_t)ch];
                for (i = 0; i < g->kh; i++) {
                    for (j = 0; j < g->kw; j++) {
                        size_t at = (size_t)(oy * g->stride + i) * (size_t)g->w + (size_t)(ox * g->stride + j);
                        @T@ v = x[at * (size_t)g->c + (size_t)ch];
                        if (v != v || v > m) m = v;
                    }
                }
                y[ch] = m;
            }
        }
    }
}
#endif

#if BNN_NEED_AVGPOOL_@SU@
/* Mean over kh x kw windows (no padding), summed in row order, then rounded to float32. */
static void bnn_avgpool_@S@(const @T@ *x, const bnn_geom_t *g, float *y) {
    int32_t oy, ox, i, j, ch;
    @T@ count = (@T@)(g->kh * g->kw);
    for (oy = 0; oy < g->oh; oy++) {
        for (ox = 0; ox < g->ow; ox++, y += g->c) {
            for (ch = 0; ch < g->c; ch++) {
                @T@ s = 0;
                for (i = 0; i < g->kh; i++) {
                    for (j = 0; j < g->kw; j++) {
                        size_t at = (size_t)(oy * g->stride + i) * (size_t)g->w + (size_t)(ox * g->stride + j);
                        s = s + x[at * (size_t)g->c + (size_t)ch];
                    }
                }
                y[ch] = (float)(s / count);
            }
        }
    }
}
#endif

#if BNN_NEED_ACT_@SU@
#define BNN_RELU 0
#define BNN_HARDTANH 1
#define BNN_TANH 2
#define BNN_PRELU 3
#define BNN_IDENTITY 4
/* An activation, rounded to float32 (the engine's output of every activation); y may be x for float. */
static void bnn_act_@S@(const @T@ *x, int32_t positions, int32_t c, int fn, const float *alpha, float *y) {
    int32_t p, ch;
    for (p = 0; p < positions; p++, x += c, y += c) {
        for (ch = 0; ch < c; ch++) {
            @T@ v = x[ch];
            switch (fn) {
            case BNN_RELU:
                v = (v >= 0 || v != v) ? v : 0; /* numpy.maximum(x, 0): NaN stays */
                break;
            case BNN_HARDTANH:
                v = v < -1 ? -1 : (v > 1 ? 1 : v);
                break;
#if BNN_NEED_MATH
            case BNN_TANH:
                v = @TANH@(v);
                break;
#endif
            case BNN_PRELU:
                v = v >= 0 ? v : (@T@)alpha[ch] * v;
                break;
            default:
                break;
            }
            y[ch] = (float)v;
        }
    }
}
#endif

#if BNN_NEED_QUANT_@SU@
#define BNN_Q_SIGN 0
#define BNN_Q_SCALED_SIGN 1
#define BNN_Q_HEAVISIDE 2
#define BNN_Q_TERNARY 3
#define BNN_Q_DOREFA 4
/* An input quantizer in eval mode, rounded to float32 (docs/FORMAT.md "quantize"). param: the ternary threshold or
   the DoReFa levels 2^bits - 1. y may be x for float. */
static void bnn_quant_@S@(const @T@ *x, int32_t positions, int32_t c, int kind, const float *thr, float param, float *y) {
    int32_t p, ch, n = positions * c;
    float scale = 1;
    if (kind == BNN_Q_SCALED_SIGN) { /* mean |x| of the sample in float64 */
        double total = 0;
        int32_t i;
        for (i = 0; i < n; i++) total += x[i] < 0 ? -(double)x[i] : (double)x[i];
        scale = (float)(n ? total / (double)n : 0.0);
    }
    for (p = 0; p < positions; p++, x += c, y += c) {
        for (ch = 0; ch < c; ch++) {
            @T@ v = x[ch];
            float q;
            switch (kind) {
            case BNN_Q_SIGN:
                q = v >= (thr ? (@T@)thr[ch] : (@T@)0) ? 1.0f : -1.0f;
                break;
            case BNN_Q_SCALED_SIGN:
                q = v >= 0 ? scale : -scale;
                break;
            case BNN_Q_HEAVISIDE:
                q = v >= 0 ? 1.0f : 0.0f;
                break;
            case BNN_Q_TERNARY:
                q = (float)(v > (@T@)param) - (float)(v < -(@T@)param);
                break;
            default: { /* DoReFa: round(clip(x, 0, 1) * levels) / levels, ties to even */
#if BNN_NEED_MATH
                @T@ t = v < 0 ? 0 : (v > 1 ? 1 : v);
                t = t * (@T@)param;
                q = (float)(@RINT@(t) / (@T@)param);
#else
                q = 0;
#endif
            }
            }
            y[ch] = q;
        }
    }
}
#endif

#if BNN_NEED_FLATTEN_@SU@
/* NHWC map -> the NCHW vector (torch's flatten order). */
static void bnn_flatten_@S@(const @T@ *x, int32_t h, int32_t w, int32_t c, @T@ *y) {
    int32_t i, ch, hw = h * w;
    for (i = 0; i < hw; i++) {
        for (ch = 0; ch < c; ch++) y[(size_t)ch * (size_t)hw + (size_t)i] = x[(size_t)i * (size_t)c + (size_t)ch];
    }
}
#endif

#if BNN_NEED_ADD_@SU@
static void bnn_add_@S@(const @T@ *a, const @T@ *b, @T@ *y, int32_t n) {
    int32_t i;
    for (i = 0; i < n; i++) y[i] = a[i] + b[i];
}
#endif

#if BNN_NEED_TOFLOAT_@SU@
static void bnn_tofloat_@S@(const @T@ *x, int32_t n, float *y) {
    int32_t i;
    for (i = 0; i < n; i++) y[i] = (float)x[i];
}
#endif

#if BNN_NEED_INPUT_REAL_@SU@
/* A first layer (+-1 weights, w: count rows of packed words per tap) on real activations, as the engine's float path:
   the dot in @T@, then z = a * dot + b in float64; bits: sign(z), float: z rounded to float32. A dense layer is a
   1 x 1 map of c = k values with a 1 x 1 kernel. Returns 1 when a NaN reached a sign. */
static int bnn_input_real_@S@(const @T@ *x, const bnn_geom_t *g, const uint32_t *w, int32_t count, const double *a,
                              const double *b, int bits, void *y) {
    int32_t oy, ox, o, i, j, ch, n = g->kh * g->kw * g->cw, ow = (count + 31) >> 5;
    int nan_seen = 0;
    for (oy = 0; oy < g->oh; oy++) {
        for (ox = 0; ox < g->ow; ox++) {
            int32_t pos = oy * g->ow + ox;
            uint32_t *yb = (uint32_t *)y + (size_t)pos * (size_t)ow;
            float *yf = (float *)y + (size_t)pos * (size_t)count;
            const uint32_t *wo = w;
            if (bits) {
                for (o = 0; o < ow; o++) yb[o] = 0;
            }
            for (o = 0; o < count; o++, wo += n) {
                @T@ acc = 0;
                double z;
                for (i = 0; i < g->kh; i++) {
                    int32_t yy = oy * g->stride - g->top + i;
                    for (j = 0; j < g->kw; j++) {
                        int32_t xx = ox * g->stride - g->left + j;
                        const uint32_t *wt = wo + (i * g->kw + j) * g->cw;
                        if (yy < 0 || yy >= g->h || xx < 0 || xx >= g->w) {
                            /* padded with 0.0: adds +0.0 or -0.0, which leaves a sum unchanged but for -0 + 0 */
                            for (ch = 0; ch < g->c; ch++) {
                                @T@ t = ((wt[ch >> 5] >> (ch & 31)) & 1u) ? -(@T@)0 : (@T@)0;
                                acc = acc + t;
                            }
                        } else {
                            const @T@ *src = x + ((size_t)yy * (size_t)g->w + (size_t)xx) * (size_t)g->c;
                            for (ch = 0; ch < g->c; ch++) {
                                @T@ t = ((wt[ch >> 5] >> (ch & 31)) & 1u) ? -src[ch] : src[ch];
                                acc = acc + t;
                            }
                        }
                    }
                }
                z = a[o] * (double)acc;
                z = z + b[o];
                if (bits) {
                    nan_seen |= z != z;
                    yb[o >> 5] |= (uint32_t)(z < 0) << (o & 31);
                } else {
                    yf[o] = (float)z;
                }
            }
        }
    }
    return nan_seen;
}
#endif
