"""Huffman coding of index streams (Deep Compression's last step): frequent shared values
get short codes. Used to report what entropy coding would make of the stored indices."""

import heapq
from collections import Counter

import numpy as np


def code_lengths(symbols: np.ndarray) -> dict[int, int]:
    """Optimal prefix-code length per symbol, from the symbols' frequencies."""
    counts = Counter(symbols.reshape(-1).tolist())
    if len(counts) == 1:
        return {next(iter(counts)): 1}
    heap = [(count, i, [symbol]) for i, (symbol, count) in enumerate(sorted(counts.items()))]
    heapq.heapify(heap)
    lengths = dict.fromkeys(counts, 0)
    tie = len(heap)
    while len(heap) > 1:
        count_a, _, group_a = heapq.heappop(heap)
        count_b, _, group_b = heapq.heappop(heap)
        for symbol in group_a + group_b:
            lengths[symbol] += 1
        heapq.heappush(heap, (count_a + count_b, tie, group_a + group_b))
        tie += 1
    return lengths


def canonical_codes(lengths: dict[int, int]) -> dict[int, tuple[int, int]]:
    """(code, length) per symbol: the canonical code, rebuildable from the lengths alone."""
    codes, code, previous = {}, 0, 0
    for symbol, length in sorted(lengths.items(), key=lambda item: (item[1], item[0])):
        code <<= length - previous
        codes[symbol] = (code, length)
        code, previous = code + 1, length
    return codes


def encode(symbols: np.ndarray) -> tuple[bytes, dict[int, int]]:
    """The bit stream (most significant bit first) and the code lengths that decode it."""
    lengths = code_lengths(symbols)
    codes = canonical_codes(lengths)
    bits = "".join(format(codes[s][0], f"0{codes[s][1]}b") for s in symbols.reshape(-1).tolist())
    padded = bits + "0" * (-len(bits) % 8)
    return int(padded, 2).to_bytes(len(padded) // 8, "big") if padded else b"", lengths


def decode(stream: bytes, lengths: dict[int, int], count: int) -> np.ndarray:
    by_code = {(code, length): s for s, (code, length) in canonical_codes(lengths).items()}
    bits = "".join(format(byte, "08b") for byte in stream)
    out, code, length = [], 0, 0
    for bit in bits:
        code, length = (code << 1) | int(bit), length + 1
        if (code, length) in by_code:
            out.append(by_code[code, length])
            code, length = 0, 0
            if len(out) == count:
                break
    return np.array(out)


def coded_bytes(symbols: np.ndarray, alphabet: int) -> int:
    """Bytes of the Huffman stream plus its table (one code length byte per symbol)."""
    lengths = code_lengths(symbols)
    counts = Counter(symbols.reshape(-1).tolist())
    return -(-sum(counts[s] * lengths[s] for s in counts) // 8) + alphabet
