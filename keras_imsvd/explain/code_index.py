"""Hard codes as compact image descriptors: bit counts, packing, retrieval."""

import numpy as np

from keras_imsvd._validation import check_positive_int
from keras_imsvd.explain._codes import check_hard_codes
from keras_imsvd.explain._codes import to_numpy

_VOTES = ("similarity", "majority")


def bits_per_image(num_variables: int, bin_size: int) -> int:
    """Bits needed to store the hard code of one image: `K ceil(log2 b)`.

    Args:
        num_variables: Number of variables `K`.
        bin_size: Bins per variable `b`, at least 2.

    Returns:
        An int. With the ImageNet settings (`K = 102`, `b = 80`), 714 bits
        (90 bytes) per image.

    Example:

    >>> from keras_imsvd import explain
    >>> explain.bits_per_image(102, 80)
    714
    """
    num_variables = check_positive_int("num_variables", num_variables)
    bin_size = check_positive_int("bin_size", bin_size)
    if bin_size < 2:
        raise ValueError(
            f"`bin_size` must be at least 2. Received: bin_size={bin_size}"
        )
    return num_variables * (bin_size - 1).bit_length()


def pack_codes(codes, bin_size: int) -> np.ndarray:
    """Packs hard codes into `ceil(log2 b)` bits per variable.

    Args:
        codes: Hard codes `(N, K)` with values in `[0, bin_size)`.
        bin_size: Bins per variable `b`.

    Returns:
        A uint8 NumPy array `(N, ceil(bits_per_image(K, b) / 8))`.

    Example:

    >>> import numpy as np
    >>> from keras_imsvd import explain
    >>> codes = np.array([[79, 0, 5]])
    >>> packed = explain.pack_codes(codes, bin_size=80)
    >>> packed.shape, explain.unpack_codes(packed, 3, bin_size=80).tolist()
    ((1, 3), [[79, 0, 5]])
    """
    codes = check_hard_codes(codes)
    bits = bits_per_image(1, bin_size)
    if codes.size and codes.max() >= bin_size:
        raise ValueError(
            f"`codes` must be below bin_size={bin_size}. Received: max={codes.max()}"
        )
    shifts = np.arange(bits - 1, -1, -1, dtype="int64")  # most significant first
    planes = (codes.astype("int64")[..., None] >> shifts) & 1  # (N, K, bits)
    return np.packbits(planes.astype("uint8").reshape(len(codes), -1), axis=1)


def unpack_codes(packed, num_variables: int, bin_size: int) -> np.ndarray:
    """Inverse of `pack_codes`.

    Args:
        packed: uint8 array `(N, bytes)` from `pack_codes`.
        num_variables: Number of variables `K`.
        bin_size: Bins per variable `b`.

    Returns:
        An int32 NumPy array `(N, K)`.
    """
    packed = to_numpy(packed)
    bits = bits_per_image(1, bin_size)
    count = bits_per_image(num_variables, bin_size)
    planes = np.unpackbits(packed.astype("uint8"), axis=1, count=count)
    planes = planes.reshape(len(packed), num_variables, bits).astype("int32")
    weights = 1 << np.arange(bits - 1, -1, -1, dtype="int32")  # (bits,)
    return planes @ weights


def _storage_dtype(bin_size):
    for dtype in ("uint8", "uint16", "uint32"):
        if bin_size - 1 <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"`bin_size` is too large. Received: bin_size={bin_size}")


class CodeIndex:
    """Nearest-neighbour retrieval on the hard codes of IMSVD.

    An image is described by its hard code, the most probable bin of each of
    its K variables (`model.codes(images)`, `K ceil(log2 b)` bits). The
    similarity of two images is the number of variables whose bins agree, an
    integer in `[0, K]` (K minus the Hamming distance between codes).
    Neighbours come sorted by decreasing similarity; ties are broken by the
    lower index in the index, so results are deterministic.

    Codes are stored in the smallest unsigned integer type that holds a bin
    (uint8 for `b <= 256`: K bytes per image); `pack_codes` packs them to the
    exact bit count for storage. Queries are answered in chunks of
    `batch_size` queries times `database_batch_size` indexed codes, so memory
    stays bounded whatever the sizes.

    Args:
        codes: Hard codes `(N, K)` of the indexed images.
        labels: Labels `(N,)` of the indexed images, needed by `classify` and
            `accuracy`, or `None`. Defaults to `None`.
        bin_size: Bins per variable `b`, or `None` to take
            `max(2, codes.max() + 1)`. Defaults to `None`.

    Example:

    ```python
    from keras_imsvd import explain
    index = explain.CodeIndex(model.codes(train_images), train_labels)
    similarities, indices = index.query(model.codes(test_images), k=20)
    accuracy = index.accuracy(model.codes(test_images), test_labels, k=20)
    ```
    """

    def __init__(self, codes, labels=None, bin_size=None):
        codes = check_hard_codes(codes)
        if not len(codes):
            raise ValueError("`codes` must hold at least one image. Received: 0")
        largest = int(codes.max()) + 1
        if bin_size is None:
            bin_size = max(2, largest)
        bits_per_image(codes.shape[1], bin_size)  # validates bin_size
        if largest > bin_size:
            raise ValueError(
                f"`codes` must be below bin_size={bin_size}. Received: "
                f"max={largest - 1}"
            )
        if labels is not None:
            labels = to_numpy(labels).reshape(-1)
            if len(labels) != len(codes):
                raise ValueError(
                    "`labels` must hold one label per code. Received: "
                    f"{len(labels)} labels for {len(codes)} codes"
                )
        self.bin_size = int(bin_size)
        self.num_variables = int(codes.shape[1])
        # Stored variable by variable, (K, N): comparing one variable of all
        # indexed codes then reads contiguous memory (several times faster).
        self._by_variable = np.ascontiguousarray(
            codes.T.astype(_storage_dtype(self.bin_size))
        )
        self.labels = labels

    @property
    def codes(self):
        """The indexed codes `(N, K)`, a view of the stored ones."""
        return self._by_variable.T

    def __len__(self):
        return len(self.codes)

    @property
    def bits_per_image(self):
        """Information in one code, `K ceil(log2 b)` bits."""
        return bits_per_image(self.num_variables, self.bin_size)

    @property
    def nbytes(self):
        """Bytes held by the stored codes."""
        return int(self._by_variable.nbytes)

    def _check_queries(self, codes):
        codes = check_hard_codes(codes)
        if codes.shape[1] != self.num_variables:
            raise ValueError(
                f"Queries must have {self.num_variables} variables like the index. "
                f"Received: codes.shape={codes.shape}"
            )
        if codes.size and codes.max() >= self.bin_size:
            raise ValueError(
                f"Queries must be below bin_size={self.bin_size}. "
                f"Received: max={codes.max()}"
            )
        return codes.astype(self.codes.dtype)

    def query(self, codes, k=20, batch_size=256, database_batch_size=8192):
        """The `k` indexed codes that agree with each query on most variables.

        Args:
            codes: Hard codes `(M, K)` of the queries.
            k: Number of neighbours, at most `len(index)`. Defaults to `20`.
            batch_size: Queries compared at once. Defaults to `256`.
            database_batch_size: Indexed codes compared at once; memory is
                about `35 * batch_size * database_batch_size` bytes (73 MB by
                default). Defaults to `8192`.

        Returns:
            A tuple `(similarities, indices)`: int32 `(M, k)` numbers of
            agreeing variables, in decreasing order, and int64 `(M, k)`
            positions in the index (the lower one first among equals).
        """
        codes = self._check_queries(codes)
        k = check_positive_int("k", k)
        batch_size = check_positive_int("batch_size", batch_size)
        database_batch_size = check_positive_int(
            "database_batch_size", database_batch_size
        )
        total = len(self.codes)
        if k > total:
            raise ValueError(
                f"`k` must be at most the number of indexed codes ({total}). "
                f"Received: k={k}"
            )
        # One int64 key per pair orders by similarity, then by index:
        # key = (K - similarity) * N + index, smaller is better.
        sentinel = np.iinfo("int64").max
        counter = "uint8" if self.num_variables <= 255 else "int32"
        keys = np.empty((len(codes), k), dtype="int64")
        for start in range(0, len(codes), batch_size):
            queries = np.ascontiguousarray(codes[start : start + batch_size].T)
            size = queries.shape[1]  # queries: (K, m)
            best = np.full((size, k), sentinel, dtype="int64")  # (m, k)
            for offset in range(0, total, database_batch_size):
                stop = min(offset + database_batch_size, total)
                indexed = self._by_variable[:, offset:stop]  # (K, n)
                agreement = np.zeros((size, stop - offset), dtype=counter)
                for variable in range(self.num_variables):
                    agreement += (
                        queries[variable][:, None] == indexed[variable][None, :]
                    )
                positions = np.arange(offset, stop, dtype="int64")
                distance = self.num_variables - agreement.astype("int64")
                candidates = distance * total + positions
                merged = np.concatenate([best, candidates], axis=1)  # (m, k + n)
                best = np.partition(merged, k - 1, axis=1)[:, :k]
            keys[start : start + size] = np.sort(best, axis=1)
        similarities = (self.num_variables - keys // total).astype("int32")
        return similarities, keys % total

    def classify(self, codes, k=20, vote="similarity", batch_size=256):
        """Predicts labels by a vote of the `k` nearest indexed codes.

        Args:
            codes: Hard codes `(M, K)` of the images to classify.
            k: Number of neighbours. Defaults to `20`.
            vote: `"similarity"` (each neighbour votes with its number of
                agreeing variables) or `"majority"` (one vote each). Ties
                between classes go to the smallest label. Defaults to
                `"similarity"`.
            batch_size: Queries compared at once. Defaults to `256`.

        Returns:
            A NumPy array `(M,)` of labels, of the dtype of the index labels.
        """
        if self.labels is None:
            raise ValueError(
                "The index has no labels: build it with CodeIndex(codes, labels)."
            )
        if vote not in _VOTES:
            raise ValueError(f"`vote` must be one of {_VOTES}. Received: vote={vote!r}")
        similarities, indices = self.query(codes, k=k, batch_size=batch_size)
        classes, label_ids = np.unique(self.labels, return_inverse=True)
        neighbour_ids = label_ids.reshape(-1)[indices]  # (M, k)
        weights = (
            similarities.astype("float64")
            if vote == "similarity"
            else np.ones(similarities.shape)
        )
        scores = np.zeros((len(indices), len(classes)), dtype="float64")  # (M, C)
        rows = np.arange(len(indices))
        for j in range(indices.shape[1]):
            np.add.at(scores, (rows, neighbour_ids[:, j]), weights[:, j])
        return classes[np.argmax(scores, axis=1)]

    def accuracy(self, codes, labels, k=20, vote="similarity", batch_size=256):
        """Fraction of `codes` whose `classify` label equals `labels`.

        Args:
            codes: Hard codes `(M, K)`.
            labels: True labels `(M,)`.
            k: Number of neighbours. Defaults to `20`.
            vote: `"similarity"` or `"majority"`. Defaults to `"similarity"`.
            batch_size: Queries compared at once. Defaults to `256`.

        Returns:
            A float in `[0, 1]`.
        """
        labels = to_numpy(labels).reshape(-1)
        if len(labels) != len(codes):
            raise ValueError(
                "`labels` must hold one label per code. Received: "
                f"{len(labels)} labels for {len(codes)} codes"
            )
        predictions = self.classify(codes, k=k, vote=vote, batch_size=batch_size)
        return float(np.mean(predictions == labels))
