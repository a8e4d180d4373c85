/**
 * One regression tree of a boosted ensemble, grown leaf-wise (best gain first) on gradient
 * histograms, with Newton-step leaf values: for a leaf with gradient sum G and hessian sum
 * H, the value is -G / (H + l2) (times the learning rate); a split's gain is
 * (G_L^2 / (H_L + l2) + G_R^2 / (H_R + l2) - G^2 / (H + l2)) / 2, as in XGBoost and LightGBM.
 */
import type { BinnedMatrix } from './feature-bins.js';

/**
 * A tree as parallel node arrays; node 0 is the root. A split node sends a row left when
 * `Math.fround(x[feature]) <= threshold`, right otherwise, and a missing (NaN) value to the
 * side `missingLeft` says. Children always have larger indices than their parent.
 */
export interface RegressionTree {
  /** Split feature of each node; -1 for a leaf. */
  feature: number[];
  /** float32 split threshold; 0 for a leaf. */
  threshold: number[];
  /** Child indices; -1 for a leaf. */
  left: number[];
  right: number[];
  /** Whether a NaN value goes to the left child. */
  missingLeft: boolean[];
  /** Leaf value (float32, learning rate included); 0 for a split node. */
  value: number[];
}

export interface TreeGrowthParams {
  learningRate: number;
  maxDepth: number;
  maxLeaves: number;
  minSamplesLeaf: number;
  minHessianLeaf: number;
  l2: number;
  minSplitGain: number;
}

/** A tree as grown on bins: `splitBin[n]` is the last bin that goes left. */
export interface BinnedTree extends RegressionTree {
  splitBin: number[];
}

interface Split {
  feature: number;
  bin: number;
  missingLeft: boolean;
  gain: number;
}

interface Leaf {
  node: number;
  /** The leaf's rows are order[start, end). */
  start: number;
  end: number;
  depth: number;
  gradient: number;
  hessian: number;
  /** Gradient, hessian and count per bin of the leaf's rows, for the sampled features. */
  histogram: Float64Array;
  split: Split | null;
}

/** Grows trees over one binned matrix; keeps its buffers between trees. */
export class TreeGrower {
  readonly #matrix: BinnedMatrix;
  readonly #params: TreeGrowthParams;
  readonly #order: Int32Array;
  readonly #scratch: Int32Array;
  readonly #pool: Float64Array[] = [];

  constructor(matrix: BinnedMatrix, params: TreeGrowthParams) {
    this.#matrix = matrix;
    this.#params = params;
    this.#order = new Int32Array(matrix.rows);
    this.#scratch = new Int32Array(matrix.rows);
  }

  /**
   * Grows one tree on the rows `rows[0..count)` with the given per-row gradients and
   * hessians, considering only `features` (ascending) for splits.
   */
  grow(rows: Int32Array, count: number, features: Int32Array, gradient: Float64Array, hessian: Float64Array): BinnedTree {
    const order = this.#order;
    order.set(rows.subarray(0, count));
    const tree: BinnedTree = { feature: [], threshold: [], left: [], right: [], missingLeft: [], value: [], splitBin: [] };
    addLeafNode(tree);
    const root = this.#leaf(0, 0, count, 0, gradient, hessian);
    this.#fillHistogram(root, features, gradient, hessian);
    root.split = this.#findSplit(root, features);
    const leaves: Leaf[] = [root];

    while (leaves.length < this.#params.maxLeaves) {
      let best = -1;
      for (let k = 0; k < leaves.length; k++) {
        const split = (leaves[k] as Leaf).split;
        if (split !== null && (best < 0 || split.gain > ((leaves[best] as Leaf).split as Split).gain)) best = k;
      }
      if (best < 0) break;
      const parent = leaves[best] as Leaf;
      const [left, right] = this.#apply(tree, parent, gradient, hessian);
      // Histogram the smaller child; the larger one is the parent's minus the smaller's.
      const small = left.end - left.start <= right.end - right.start ? left : right;
      const large = small === left ? right : left;
      this.#fillHistogram(small, features, gradient, hessian);
      const target = parent.histogram;
      const source = small.histogram;
      for (let s = 0; s < target.length; s++) target[s] = (target[s] as number) - (source[s] as number);
      large.histogram = target;
      left.split = this.#findSplit(left, features);
      right.split = this.#findSplit(right, features);
      leaves.splice(best, 1, left, right);
    }

    const { learningRate, l2 } = this.#params;
    for (const leaf of leaves) {
      tree.value[leaf.node] = Math.fround((learningRate * -leaf.gradient) / (leaf.hessian + l2));
      this.#pool.push(leaf.histogram);
    }
    return tree;
  }

  #leaf(node: number, start: number, end: number, depth: number, gradient: Float64Array, hessian: Float64Array): Leaf {
    let g = 0;
    let h = 0;
    for (let k = start; k < end; k++) {
      const r = this.#order[k] as number;
      g += gradient[r] as number;
      h += hessian[r] as number;
    }
    return { node, start, end, depth, gradient: g, hessian: h, histogram: EMPTY, split: null };
  }

  #fillHistogram(leaf: Leaf, features: Int32Array, gradient: Float64Array, hessian: Float64Array): void {
    const { codes, offsets, slots, features: width } = this.#matrix;
    const histogram = this.#pool.pop() ?? new Float64Array(slots * 3);
    histogram.fill(0);
    const order = this.#order;
    const used = features.length;
    for (let k = leaf.start; k < leaf.end; k++) {
      const r = order[k] as number;
      const g = gradient[r] as number;
      const h = hessian[r] as number;
      const base = r * width;
      for (let u = 0; u < used; u++) {
        const j = features[u] as number;
        const s = ((offsets[j] as number) + (codes[base + j] as number)) * 3;
        histogram[s] = (histogram[s] as number) + g;
        histogram[s + 1] = (histogram[s + 1] as number) + h;
        histogram[s + 2] = (histogram[s + 2] as number) + 1;
      }
    }
    leaf.histogram = histogram;
  }

  #findSplit(leaf: Leaf, features: Int32Array): Split | null {
    const { maxDepth, minSamplesLeaf, minHessianLeaf, l2, minSplitGain } = this.#params;
    const count = leaf.end - leaf.start;
    if (leaf.depth >= maxDepth || count < 2 * minSamplesLeaf) return null;
    const { gradient: g, hessian: h, histogram } = leaf;
    const parentScore = (g * g) / (h + l2);
    let best: Split | null = null;
    let bestGain = minSplitGain;
    const consider = (feature: number, bin: number, lg: number, lh: number, lc: number, missingLeft: boolean): void => {
      const rc = count - lc;
      const rg = g - lg;
      const rh = h - lh;
      if (lc < minSamplesLeaf || rc < minSamplesLeaf || lh < minHessianLeaf || rh < minHessianLeaf) return;
      const gain = 0.5 * ((lg * lg) / (lh + l2) + (rg * rg) / (rh + l2) - parentScore);
      if (gain > bestGain) {
        bestGain = gain;
        best = { feature, bin, missingLeft, gain };
      }
    };
    for (let u = 0; u < features.length; u++) {
      const j = features[u] as number;
      const { missingBin } = this.#matrix.binnings[j]!;
      const offset = (this.#matrix.offsets[j] as number) * 3;
      const m = offset + missingBin * 3;
      const mg = histogram[m] as number;
      const mh = histogram[m + 1] as number;
      const mc = histogram[m + 2] as number;
      let lg = 0;
      let lh = 0;
      let lc = 0;
      // Value bins are 0..missingBin-1; a split after the last one would leave nothing on the right.
      for (let b = 0; b < missingBin - 1; b++) {
        const s = offset + b * 3;
        lg += histogram[s] as number;
        lh += histogram[s + 1] as number;
        lc += histogram[s + 2] as number;
        if (mc > 0) {
          consider(j, b, lg, lh, lc, false);
          consider(j, b, lg + mg, lh + mh, lc + mc, true);
        } else {
          // No missing value reached this node: a NaN follows the child with more rows.
          consider(j, b, lg, lh, lc, lc >= count - lc);
        }
      }
    }
    return best;
  }

  /** Splits `parent` in the tree and partitions its rows (stably) between the two children. */
  #apply(tree: BinnedTree, parent: Leaf, gradient: Float64Array, hessian: Float64Array): [Leaf, Leaf] {
    const split = parent.split as Split;
    const { codes, features: width, binnings } = this.#matrix;
    const binning = binnings[split.feature]!;
    const order = this.#order;
    const scratch = this.#scratch;
    let lefts = parent.start;
    let rights = 0;
    for (let k = parent.start; k < parent.end; k++) {
      const r = order[k] as number;
      const code = codes[r * width + split.feature] as number;
      const goLeft = code === binning.missingBin ? split.missingLeft : code <= split.bin;
      if (goLeft) order[lefts++] = r;
      else scratch[rights++] = r;
    }
    order.set(scratch.subarray(0, rights), lefts);

    const n = parent.node;
    const leftNode = addLeafNode(tree);
    const rightNode = addLeafNode(tree);
    tree.feature[n] = split.feature;
    tree.threshold[n] = binning.edges[split.bin] as number;
    tree.splitBin[n] = split.bin;
    tree.missingLeft[n] = split.missingLeft;
    tree.left[n] = leftNode;
    tree.right[n] = rightNode;
    const depth = parent.depth + 1;
    return [
      this.#leaf(leftNode, parent.start, lefts, depth, gradient, hessian),
      this.#leaf(rightNode, lefts, parent.end, depth, gradient, hessian),
    ];
  }
}

const EMPTY = new Float64Array(0);

function addLeafNode(tree: BinnedTree): number {
  tree.feature.push(-1);
  tree.threshold.push(0);
  tree.left.push(-1);
  tree.right.push(-1);
  tree.missingLeft.push(false);
  tree.value.push(0);
  tree.splitBin.push(-1);
  return tree.feature.length - 1;
}

/** The leaf value a tree gives binned row `row` (identical to thresholds on the float32 values). */
export function binnedLeafValue(tree: BinnedTree, matrix: BinnedMatrix, row: number): number {
  const base = row * matrix.features;
  let node = 0;
  for (;;) {
    const j = tree.feature[node] as number;
    if (j < 0) return tree.value[node] as number;
    const code = matrix.codes[base + j] as number;
    const goLeft = code === matrix.binnings[j]!.missingBin ? (tree.missingLeft[node] as boolean) : code <= (tree.splitBin[node] as number);
    node = (goLeft ? tree.left[node] : tree.right[node]) as number;
  }
}
