/**
 * Quantile binning of the training matrix, computed once before boosting: every feature's
 * float32 values are cut into at most `maxBins` bins, and each row keeps one byte per
 * feature, its bin. Split finding then sums gradients per bin (a histogram) instead of
 * sorting rows at every node.
 *
 * Bin edges are float32 values that occur in the training data. A value v falls in bin
 * `b` = the number of edges strictly below v, so `bin(v) <= b` exactly when `v <= edges[b]`:
 * a split "bins 0..b go left" is the comparison `x <= edges[b]` on the float32 input, which
 * ONNX's `BRANCH_LEQ` reproduces bit for bit. NaN is missing and has its own bin, after the
 * others; ±Infinity fall in the first or last bin like any other value.
 */

/** Bins of one feature. */
export interface FeatureBinning {
  /** Strictly increasing, finite float32 upper edges; `edges.length + 1` value bins. */
  edges: Float64Array;
  /** The bin of NaN: `edges.length + 1`. */
  missingBin: number;
}

export interface BinnedMatrix {
  rows: number;
  features: number;
  /** Row-major bin codes: `codes[row * features + feature]`. */
  codes: Uint8Array;
  binnings: FeatureBinning[];
  /** Offset of each feature's first bin in a histogram covering every feature (missing bin included). */
  offsets: Int32Array;
  /** Total histogram slots: sum over features of `edges.length + 2`. */
  slots: number;
}

/** Largest `maxBins`: value bins and the missing bin must fit in one byte. */
export const MAX_BINS = 255;

/**
 * Bins `data` (row-major float32, `rows` x `features`). Features with at most `maxBins`
 * distinct values get one bin per value; the others get bins of about equal row counts
 * (a frequent value gets a bin of its own).
 */
export function binMatrix(data: Float32Array, rows: number, features: number, maxBins: number): BinnedMatrix {
  if (!Number.isInteger(maxBins) || maxBins < 2 || maxBins > MAX_BINS) {
    throw new Error(`binMatrix: maxBins must be an integer in [2, ${MAX_BINS}], got ${String(maxBins)}`);
  }
  if (data.length !== rows * features) throw new Error(`binMatrix: ${data.length} values for ${rows} x ${features}`);
  const binnings: FeatureBinning[] = [];
  const column = new Float32Array(rows);
  for (let j = 0; j < features; j++) {
    let present = 0;
    for (let i = 0; i < rows; i++) {
      const v = data[i * features + j] as number;
      if (v === v) column[present++] = v;
    }
    const edges = quantileEdges(column.subarray(0, present).sort(), maxBins);
    binnings.push({ edges, missingBin: edges.length + 1 });
  }
  const offsets = new Int32Array(features);
  let slots = 0;
  for (let j = 0; j < features; j++) {
    offsets[j] = slots;
    slots += (binnings[j] as FeatureBinning).missingBin + 1;
  }
  const codes = new Uint8Array(rows * features);
  for (let j = 0; j < features; j++) {
    const { edges, missingBin } = binnings[j] as FeatureBinning;
    for (let i = 0; i < rows; i++) {
      const v = data[i * features + j] as number;
      codes[i * features + j] = v === v ? binIndex(edges, v) : missingBin;
    }
  }
  return { rows, features, codes, binnings, offsets, slots };
}

/** The number of edges strictly below `v` (a lower-bound binary search). */
export function binIndex(edges: Float64Array, v: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((edges[mid] as number) < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Edges over sorted float32 values (NaN removed): finite, strictly increasing, below the
 * maximum. Greedy over the distinct values in order: a bin closes once it holds its share of
 * the rows still to place (rows left / bins left), or just before a value that is worth a
 * bin on its own, so a frequent value neither swallows the others' bins nor shares one.
 */
function quantileEdges(sorted: Float32Array, maxBins: number): Float64Array {
  const values: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const v = sorted[i] as number;
    // -0 and 0 are one value (`+ 0` keeps 0).
    if (values.length > 0 && v === values[values.length - 1]) counts[counts.length - 1]!++;
    else {
      values.push(v + 0);
      counts.push(1);
    }
  }
  const edges: number[] = [];
  const push = (v: number): void => {
    // Infinite values need no edge: they fall in the first or last bin.
    if (Number.isFinite(v) && (edges.length === 0 || v > (edges[edges.length - 1] as number))) edges.push(v);
  };
  if (values.length <= maxBins) {
    // One bin per value; the maximum needs no edge, nothing lies above it.
    for (let k = 0; k < values.length - 1; k++) push(values[k] as number);
    return Float64Array.from(edges);
  }
  let rowsLeft = sorted.length;
  let binsLeft = maxBins;
  let inBin = 0;
  for (let k = 0; k < values.length - 1 && binsLeft > 1; k++) {
    const count = counts[k] as number;
    inBin += count;
    rowsLeft -= count;
    const share = (inBin + rowsLeft) / binsLeft;
    if (inBin >= share || (counts[k + 1] as number) >= share) {
      push(values[k] as number);
      binsLeft--;
      inBin = 0;
    }
  }
  return Float64Array.from(edges);
}
