// Token selection's ranking, once per image in every idle block: a bottom-up merge sort over
// the caller's memory. Swift's sort took ~10 us per DeiT-S image (196 tokens) and allocated an
// array per call; this sorts in place with the scratch it is given.
#include "CKernels.h"

// Runs of `width` tokens from `from` merged pairwise into `to`. Taking the left run's token
// unless the right one's score is strictly greater keeps the sort stable: equal scores stay in
// token order. Every token is copied once whatever the comparisons say (NaN compares false).
static void merge_runs(const double *scores, const int32_t *from, size_t count, size_t width, int32_t *to) {
    for (size_t start = 0; start < count; start += 2 * width) {
        const size_t middle = start + width < count ? start + width : count;
        const size_t end = middle + width < count ? middle + width : count;
        size_t left = start, right = middle, out = start;
        while (left < middle && right < end) {
            if (scores[from[right]] > scores[from[left]]) {
                to[out++] = from[right++];
            } else {
                to[out++] = from[left++];
            }
        }
        while (left < middle) to[out++] = from[left++];
        while (right < end) to[out++] = from[right++];
    }
}

void idv_rank_descending(const double *scores, size_t first, size_t count, int32_t *order, int32_t *scratch) {
    // Runs of 8 by insertion first: a few comparisons each, where merging from runs of 1
    // would make three passes over the array for them.
    const size_t run = 8;
    for (size_t start = 0; start < count; start += run) {
        const size_t end = start + run < count ? start + run : count;
        for (size_t i = start; i < end; i++) {
            const int32_t token = (int32_t)(first + i);
            size_t j = i;
            while (j > start && scores[token] > scores[order[j - 1]]) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = token;
        }
    }
    int32_t *from = order, *to = scratch;
    for (size_t width = run; width < count; width *= 2) {
        merge_runs(scores, from, count, width, to);
        int32_t *swap = from;
        from = to;
        to = swap;
    }
    if (from != order) {
        for (size_t i = 0; i < count; i++) order[i] = from[i];
    }
}
