"""Finding MPEG-4 Part 2 packets that decode to no frame, which an index would count as frames.

XVID and DivX encoders write a not-coded VOP (a VOP header whose `vop_coded` bit is 0: "show the previous frame
again") for a dropped or repeated frame, a chunk of a few bytes; some write a one-byte placeholder instead. FFmpeg
decodes neither to a frame (`FRAME_SKIPPED` in its mpeg4 decoder; a one-byte packet is skipped in a stream from
XviD or DivX and refused in others), and it refuses a coded P- or I-VOP with fewer bits than half its macroblocks
(a truncated frame). OpenCV's sequential read then counts other frames than an index of the packets does, and
between two seek runs nothing decoded would show it. So the stream index reads the small packets of an MPEG-4
stream and refuses the stream when one holds no coded, whole-looking VOP (`stream_index.py`).

The VOP header's `vop_coded` bit follows a time increment whose width the stream's VOL header sets (ISO/IEC
14496-2, 6.2.3 and 6.2.5; FFmpeg's decode_vol_header and decode_vop_header), so the VOL is read first, from the
codec's extradata and every keyframe (where a spliced file may carry another). Where a header does not read as
the standard says (FFmpeg guesses there), the answer is "cannot tell", and the caller treats that as
untrustworthy too: a sequential decode is always right, only slower. So is a packed-bitstream AVI's placeholder,
which FFmpeg fills with the B-VOP the packet before it carried.
"""

from __future__ import annotations

# A not-coded VOP is 6-9 bytes (start code, 2-5 bytes of header, stuffing). Packets up to this size plus a
# sixteenth of a byte per macroblock (the truncation check's half a bit each) are read: a coded frame carries at
# least a bit per macroblock, so only tiny or static frames are read needlessly, a few bytes each.
SMALL_PACKET_BYTES = 64

_START_CODE_PREFIX = b"\x00\x00\x01"
_VOP_START_CODE = 0xB6
_VOL_START_CODES = range(0x20, 0x30)
# Headers are read from their first bytes: vop_coded comes within 2 + (1 per second of modulo_time_base) + 1 + 16
# + 1 + 1 bits of the VOP start code, the time increment resolution within 146 bits of the VOL's.
_VOP_HEADER_BYTES_READ = 16
_VOL_HEADER_BYTES_READ = 24
_STUDIO_OBJECT_TYPES = (14, 15)  # simple and core studio: another VOL and VOP syntax (decode_studio_vol_header)
_EXTENDED_PAR = 15  # aspect_ratio_info: the pixel aspect ratio follows in two bytes
_GRAYSCALE_SHAPE = 3
_B_VOP = 2
# An S-VOP (sprite or global motion compensation) carries its warping points between vop_coded and the macroblocks,
# a length set by VOL fields this reader stops before (sprite_enable, no_of_sprite_warping_points): its picture
# bits cannot be counted, so a small one is "cannot tell". FFmpeg's encoder never writes one; XviD's GMC mode does.
_S_VOP = 3
# What follows vop_coded in a VOP header before the macroblocks: 12 bits in a progressive P-VOP (rounding type,
# intra DC threshold, quantiser, f_code), a few more with interlacing or a 9-bit quantiser. Counting 20 as header,
# not picture, errs towards "cannot tell": on FFmpeg 8's decoder (libavcodec 62.28) a P-VOP of a 320x240 stream
# truncated to 25 bytes is refused and one of 26 decodes; this check flags both.
_HEADER_BITS_AFTER_VOP_CODED = 20


class _Bits:
    """Reads big-endian bit fields from bytes; reading past the end raises EOFError."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.size = 8 * len(data)
        self.position = 0

    def read(self, count: int) -> int:
        if self.position + count > self.size:
            raise EOFError
        self.position += count
        return (self.value >> (self.size - self.position)) & ((1 << count) - 1)


def largest_packet_checked(width: int, height: int) -> int:
    """The size up to which a packet of a `width` x `height` stream is read for its VOP header (0 x 0: unknown)."""
    return SMALL_PACKET_BYTES + macroblocks(width, height) // 16


def macroblocks(width: int, height: int) -> int:
    return ((width + 15) // 16) * ((height + 15) // 16)


def _payloads_after(data: bytes, start_codes: range | tuple[int, ...]) -> list[bytes]:
    """The bytes after each start code in `data` whose code byte is in `start_codes`, in order."""
    payloads, offset = [], data.find(_START_CODE_PREFIX)
    while offset >= 0 and offset + 3 < len(data):
        following = data.find(_START_CODE_PREFIX, offset + 3)
        if data[offset + 3] in start_codes:
            payloads.append(data[offset + 4 : following if following >= 0 else len(data)])
        offset = following
    return payloads


def time_increment_widths(data: bytes) -> list[int | None]:
    """The time-increment width each VOL header in `data` (extradata or a packet) sets, in order: None for one
    that does not read as the standard says, or uses the studio syntax."""
    return [_time_increment_width(vol[:_VOL_HEADER_BYTES_READ]) for vol in _payloads_after(data, _VOL_START_CODES)]


def _time_increment_width(vol: bytes) -> int | None:
    bits = _Bits(vol)
    try:
        bits.read(1)  # random_accessible_vol
        if bits.read(8) in _STUDIO_OBJECT_TYPES:  # video_object_type_indication
            return None
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


def why_no_frame(packet: bytes, increment_bits: int, num_macroblocks: int = 0) -> str | None:
    """Why this packet of an MPEG-4 Part 2 stream may decode to no frame, or None when it holds a coded VOP with
    at least `num_macroblocks` / 2 bits of picture. A header that does not read as the standard says gets a reason
    too: the caller cannot count such a packet a frame."""
    vops = _payloads_after(packet, (_VOP_START_CODE,))
    if not vops:
        return f"a {len(packet)}-byte packet without a VOP (a placeholder that decodes to nothing)"
    bits = _Bits(vops[0][:_VOP_HEADER_BYTES_READ])
    try:
        coding_type = bits.read(2)
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
    if not coded:
        return "a not-coded VOP (a dropped frame that decodes to nothing)"
    if coding_type == _S_VOP:
        return f"a {len(packet)}-byte S-VOP (global motion compensation), whose header length this check cannot read"
    picture_bits = 8 * len(vops[0]) - bits.position - _HEADER_BITS_AFTER_VOP_CODED
    if coding_type != _B_VOP and picture_bits < num_macroblocks / 2:
        return f"a {len(packet)}-byte VOP too short for its {num_macroblocks} macroblocks (a truncated frame)"
    return None
