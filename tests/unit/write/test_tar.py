import io
import tarfile

from shardkit.write.tar import END_OF_ARCHIVE, member_bytes, member_header, padding


def test_headers_are_plain_ustar_and_fixed():
    h = member_header("grewar3/XC1-0000.wav", 1234)
    assert len(h) == 512 and member_header("grewar3/XC1-0000.wav", 1234) == h
    buf = h + b"a" * 1234 + padding(1234) + END_OF_ARCHIVE
    with tarfile.open(fileobj=io.BytesIO(buf)) as tf:
        (m,) = tf.getmembers()
        assert (m.name, m.size, m.mtime, m.uid, m.gid, m.mode, m.uname) == ("grewar3/XC1-0000.wav", 1234, 0, 0, 0,
                                                                            0o644, "")
        assert m.pax_headers == {}
    assert member_bytes(1234) == 512 + 1536 and member_bytes(512) == 1024
