from hypothesis import given
from hypothesis import strategies as st

from shardkit.ingest.segment import plan_chunks, plan_segments


@given(frames=st.integers(0, 100_000), segment=st.integers(1, 5000), hop=st.integers(1, 5000),
       tail=st.sampled_from(["pad", "keep", "drop"]))
def test_segments_invariants(frames, segment, hop, tail):
    pieces = plan_segments(frames, segment, hop, tail)
    starts = [p.start for p in pieces]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for k, p in enumerate(pieces):
        assert p.start == k * hop
        assert 0 < p.length <= segment and p.start + p.length <= frames
        if tail == "pad":
            assert p.length + p.pad == segment
        else:
            assert p.pad == 0
        if tail == "drop":
            assert p.length == segment
    full = [p for p in pieces if p.length == segment]
    # every full window that fits is there
    assert len(full) == (0 if frames < segment else (frames - segment) // hop + 1)
    # the tail is exactly the next window start, when it has frames left and tail != drop
    nxt = len(full) * hop
    has_tail = nxt < frames and tail != "drop"
    assert len(pieces) == len(full) + has_tail


@given(frames=st.integers(0, 10_000_000), max_frames=st.integers(1000, 3_000_000))
def test_chunks_cover_exactly_and_are_balanced(frames, max_frames):
    pieces = plan_chunks(frames, max_frames)
    assert sum(p.length for p in pieces) == frames
    pos = 0
    for p in pieces:
        assert p.start == pos and p.length <= max_frames and p.pad == 0
        pos += p.length
    if pieces:
        lengths = [p.length for p in pieces]
        assert max(lengths) - min(lengths) <= 1


def test_examples():
    assert plan_segments(12, 5, 5, "pad") == [(0, 5, 0), (5, 5, 0), (10, 2, 3)]
    assert plan_segments(12, 5, 5, "keep")[-1] == (10, 2, 0)
    assert plan_segments(12, 5, 5, "drop") == [(0, 5, 0), (5, 5, 0)]
    assert plan_segments(3, 5, 5, "pad") == [(0, 3, 2)]
    assert plan_segments(10, 5, 5, "pad") == [(0, 5, 0), (5, 5, 0)]
    assert plan_chunks(10, None) == [(0, 10, 0)]
    assert plan_chunks(605, 300) == [(0, 201, 0), (201, 202, 0), (403, 202, 0)]
