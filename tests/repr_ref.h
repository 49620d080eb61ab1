/* The number formatter bpviz had before Schubfach (src/base.c), kept as the
 * reference the new one is compared with (test_base, repr_exhaustive):
 * bisection over precisions with glibc's correctly rounded printf and
 * strtod. Slow (microseconds a number) and plainly right. */
#ifndef BPV_REPR_REF_H
#define BPV_REPR_REF_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adds one unit in the last mantissa digit of "-d.ddde+XX" text, carrying
 * into the exponent when the digits were all nines. */
static bool repr_ref_bump(char *t) {
    char *e = strchr(t, 'e');
    if (!e) return false;
    char *q = e - 1;
    for (;; q--) {
        if (*q == '.') continue;
        if (*q == '-' || q < t) break;
        if (*q < '9') {
            (*q)++;
            return true;
        }
        *q = '0';
        if (q == t || q[-1] == '-') break;
    }
    *q = '1';
    int ex = atoi(e + 1) + 1;
    sprintf(e, "e%+d", ex);
    return true;
}

static bool repr_ref_reads_back(double v, int prec, char *digits, size_t n) {
    snprintf(digits, n, "%.*e", prec - 1, v);
    if (strtod(digits, NULL) == v) return true;
    return repr_ref_bump(digits) && strtod(digits, NULL) == v;
}

static char *repr_ref(char *buf, double v) {
    if (isnan(v)) {
        strcpy(buf, "nan");
        return buf;
    }
    if (isinf(v)) {
        strcpy(buf, v < 0 ? "-inf" : "inf");
        return buf;
    }
    if (v == 0) {
        strcpy(buf, signbit(v) ? "-0.0" : "0.0");
        return buf;
    }
    char digits[40];
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (repr_ref_reads_back(v, mid, digits, sizeof digits))
            hi = mid;
        else
            lo = mid + 1;
    }
    repr_ref_reads_back(v, lo, digits, sizeof digits);
    const char *p = digits;
    bool neg = *p == '-';
    if (neg) p++;
    char mant[24];
    int nm = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') mant[nm++] = *p;
    while (nm > 1 && mant[nm - 1] == '0') nm--;
    mant[nm] = '\0';
    int exp10 = atoi(p + 1);
    int decpt = exp10 + 1;
    char *o = buf;
    if (neg) *o++ = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -decpt; i++) *o++ = '0';
            for (int i = 0; i < nm; i++) *o++ = mant[i];
        } else {
            for (int i = 0; i < decpt; i++) *o++ = i < nm ? mant[i] : '0';
            *o++ = '.';
            if (nm > decpt)
                for (int i = decpt; i < nm; i++) *o++ = mant[i];
            else
                *o++ = '0';
        }
        *o = '\0';
    } else {
        *o++ = mant[0];
        if (nm > 1) {
            *o++ = '.';
            for (int i = 1; i < nm; i++) *o++ = mant[i];
        }
        int e = decpt - 1;
        sprintf(o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    return buf;
}

#endif
