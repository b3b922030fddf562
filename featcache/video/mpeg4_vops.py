"""Finding MPEG-4 Part 2 packets that decode to no frame, which an index would count as frames.

XVID and DivX encoders write a not-coded VOP (a VOP header whose `vop_coded` bit is 0: "show the previous frame
again") for a dropped or repeated frame, a chunk of a few bytes; some write a one-byte placeholder instead. FFmpeg
decodes neither to a frame (`FRAME_SKIPPED` in its mpeg4 decoder), so OpenCV's sequential read goes on to the next
packet and counts one frame fewer than the packets, while an index counts every packet. Between two seek runs
nothing decoded would show the shift. So the stream index reads the small packets of an MPEG-4 stream (a
not-coded VOP is a header alone) and refuses the stream when one holds no coded VOP (`stream_index.py`).

The VOP header's `vop_coded` bit follows a time increment whose width the stream's VOL header sets (ISO/IEC
14496-2, 6.2.3 and 6.2.5), so the VOL is read first, from the codec's extradata or the first packet. Where a
header cannot be read as the standard says (FFmpeg guesses there), the answer is "cannot tell", and the caller
treats that as untrustworthy too: a sequential decode is always right, only slower.
"""

from __future__ import annotations

# Packets up to this size are read for their VOP header: a not-coded VOP is 6-9 bytes (start code, 2-5 bytes of
# header, stuffing), while a coded frame of a 320x240 video is rarely under 40; only tiny or static frames are
# read needlessly, a few bytes each.
LARGEST_PACKET_CHECKED = 64

_START_CODE_PREFIX = b"\x00\x00\x01"
_VOP_START_CODE = 0xB6
_VOL_START_CODES = range(0x20, 0x30)
# vop_coded comes within 2 + 1 s of modulo_time_base + 1 + 16 + 1 + 1 bits; the resolution within 125 bits of a VOL.
_VOP_HEADER_BYTES_READ = 16
_VOL_HEADER_BYTES_READ = 24
_EXTENDED_PAR = 15  # aspect_ratio_info: the pixel aspect ratio follows in two bytes
_GRAYSCALE_SHAPE = 3


class _Bits:
    """Reads big-endian bit fields from bytes; reading past the end raises EOFError."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")  # headers are read from the first bytes: at most a few dozen
        self.size = 8 * len(data)
        self.position = 0

    def read(self, count: int) -> int:
        if self.position + count > self.size:
            raise EOFError
        self.position += count
        return (self.value >> (self.size - self.position)) & ((1 << count) - 1)


def _payloads_after(data: bytes, start_codes: range | tuple[int, ...]) -> list[bytes]:
    """The bytes after each start code in `data` whose code byte is in `start_codes`, in order."""
    payloads, offset = [], data.find(_START_CODE_PREFIX)
    while offset >= 0 and offset + 3 < len(data):
        following = data.find(_START_CODE_PREFIX, offset + 3)
        if data[offset + 3] in start_codes:
            payloads.append(data[offset + 4 : following if following >= 0 else len(data)])
        offset = following
    return payloads


def time_increment_bits(data: bytes) -> int | None:
    """The width of a VOP header's time increment, from the first VOL header in `data` (extradata or a packet);
    None when `data` holds none, or one that does not read as the standard says."""
    vols = _payloads_after(data, _VOL_START_CODES)
    if not vols:
        return None
    bits = _Bits(vols[0][:_VOL_HEADER_BYTES_READ])
    try:
        bits.read(1 + 8)  # random_accessible_vol, video_object_type_indication
        verid = 1
        if bits.read(1):  # is_object_layer_identifier: video_object_layer_verid and _priority follow
            verid = bits.read(4)
            bits.read(3)
        if bits.read(4) == _EXTENDED_PAR:
            bits.read(16)
        if bits.read(1):  # vol_control_parameters: chroma_format, low_delay, then vbv_parameters
            bits.read(3)
            if bits.read(1):
                bits.read(79)
        shape = bits.read(2)
        if shape == _GRAYSCALE_SHAPE and verid != 1:
            bits.read(4)
        if not bits.read(1):  # marker
            return None
        resolution = bits.read(16)
        if resolution == 0 or not bits.read(1):
            return None
    except EOFError:
        return None
    # As FFmpeg's decoder: av_log2(resolution - 1) + 1 bits, at least 1.
    return max(1, (resolution - 1).bit_length())


def why_no_frame(packet: bytes, increment_bits: int) -> str | None:
    """Why this packet of an MPEG-4 Part 2 stream decodes to no frame, or None when its VOP is coded. A packet
    whose header cannot be read as the standard says gets a reason too (the caller cannot count it a frame)."""
    vops = _payloads_after(packet, (_VOP_START_CODE,))
    if not vops:
        return f"a {len(packet)}-byte packet without a VOP (a placeholder that decodes to nothing)"
    bits = _Bits(vops[0][:_VOP_HEADER_BYTES_READ])
    try:
        bits.read(2)  # vop_coding_type
        while bits.read(1):  # modulo_time_base: a 1 per second elapsed, then a 0
            pass
        if not bits.read(1):
            return "a VOP header that does not read as its VOL says (marker before the time increment)"
        bits.read(increment_bits)
        if not bits.read(1):
            return "a VOP header that does not read as its VOL says (marker after the time increment)"
        coded = bits.read(1)
    except EOFError:
        return f"a {len(packet)}-byte VOP cut short in its header"
    return None if coded else "a not-coded VOP (a dropped frame that decodes to nothing)"
