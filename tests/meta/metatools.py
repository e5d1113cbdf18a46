"""Readers and writers of image metadata for the tests, independent of
pixmend: the raw ICC profile, EXIF, XMP, resolution and PNG text of a PNG,
JPEG or WebP file, read from its container structure; test fixtures made
with PIL. Used by tests/meta/test_meta_cli.py and the integration tests."""
import io
import struct
import zlib

XMP_SIG = b"http://ns.adobe.com/xap/1.0/\0"

XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
       b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
       b'xmlns:xmp="http://ns.adobe.com/xap/1.0/"><xmp:CreatorTool>pixmend-test</xmp:CreatorTool>'
       b'<dc:rights>test rights</dc:rights></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')

XMP_GPS = XMP.replace(b"<dc:rights>", b'<exif:GPSLatitude xmlns:exif="http://ns.adobe.com/exif/1.0/">'
                      b"48,51.5N</exif:GPSLatitude><dc:rights>")


def read_meta(data):
    """{'format', 'icc', 'exif', 'xmp', 'res': (unit, x, y) or None, 'text': [(type, payload)]}."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    raise AssertionError("not an image")


def _empty(fmt):
    return {"format": fmt, "icc": None, "exif": None, "xmp": None, "res": None, "text": []}


def _png(d):
    m = _empty("png")
    pos = 8
    while pos + 12 <= len(d):
        n, = struct.unpack(">I", d[pos:pos + 4])
        t = d[pos + 4:pos + 8]
        p = d[pos + 8:pos + 8 + n]
        if t == b"iCCP":
            k = p.index(b"\0")
            m["icc"] = zlib.decompress(p[k + 2:])
        elif t == b"eXIf":
            m["exif"] = p
        elif t == b"pHYs":
            x, y, u = struct.unpack(">IIB", p)
            m["res"] = ("per_metre" if u == 1 else "aspect", x, y)
        elif t == b"iTXt" and p.startswith(b"XML:com.adobe.xmp\0"):
            rest = p[len(b"XML:com.adobe.xmp\0"):]
            flag = rest[0]
            rest = rest[2:]
            rest = rest[rest.index(b"\0") + 1:]
            rest = rest[rest.index(b"\0") + 1:]
            m["xmp"] = zlib.decompress(rest) if flag else rest
        elif t in (b"tEXt", b"zTXt", b"iTXt"):
            m["text"].append((t.decode(), p))
        elif t == b"IEND":
            break
        pos += 12 + n
    return m


def _jpeg(d):
    m = _empty("jpeg")
    icc = {}
    pos = 2
    while pos + 4 <= len(d):
        assert d[pos] == 0xFF, "marker expected at %d" % pos
        mk = d[pos + 1]
        if mk == 0xDA or mk == 0xD9:
            break
        n, = struct.unpack(">H", d[pos + 2:pos + 4])
        p = d[pos + 4:pos + 2 + n]
        if mk == 0xE0 and p[:5] == b"JFIF\0" and p[7] in (1, 2):
            x, y = struct.unpack(">HH", p[8:12])
            m["res"] = ("per_inch" if p[7] == 1 else "per_cm", x, y)
        elif mk == 0xE1 and p[:6] == b"Exif\0\0" and m["exif"] is None:
            m["exif"] = p[6:]
        elif mk == 0xE1 and p.startswith(XMP_SIG):
            m["xmp"] = p[len(XMP_SIG):]
        elif mk == 0xE2 and p[:12] == b"ICC_PROFILE\0":
            icc[p[12]] = p[14:]
        pos += 2 + n
    if icc:
        m["icc"] = b"".join(icc[k] for k in sorted(icc))
    return m


def _webp(d):
    m = _empty("webp")
    pos = 12
    while pos + 8 <= len(d):
        t = d[pos:pos + 4]
        n, = struct.unpack("<I", d[pos + 4:pos + 8])
        p = d[pos + 8:pos + 8 + n]
        if t == b"ICCP":
            m["icc"] = p
        elif t == b"EXIF":
            m["exif"] = p[6:] if p[:6] == b"Exif\0\0" else p
        elif t == b"XMP ":
            m["xmp"] = p
        pos += 8 + n + (n & 1)
    return m


def dpi_of(m):
    """(x, y) in dots per inch, or None."""
    if not m["res"]:
        return None
    u, x, y = m["res"]
    k = {"per_inch": 1.0, "per_cm": 2.54, "per_metre": 0.0254}.get(u)
    return None if k is None else (x * k, y * k)


def srgb_icc():
    from PIL import ImageCms
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_bytes(orientation=1, gps=True, make="PixmendCam"):
    """A TIFF EXIF block (with the "Exif\\0\\0" prefix PIL writes) with Make,
    DateTime, orientation and, if asked, a GPS IFD."""
    from PIL import Image
    ex = Image.Exif()
    ex[0x010F] = make
    ex[0x0132] = "2024:05:06 07:08:09"
    ex[0x0112] = orientation
    if gps:
        ex[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    return ex.tobytes()


def insert_jpeg_segments(jpeg, segments):
    """Inserts (marker, payload) segments right after SOI (and a JFIF APP0)."""
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", jpeg[4:6])[0]
    out = jpeg[:pos]
    for mk, p in segments:
        out += bytes([0xFF, mk]) + struct.pack(">H", len(p) + 2) + p
    return out + jpeg[pos:]


def png_chunk(t, p):
    return struct.pack(">I", len(p)) + t + p + struct.pack(">I", zlib.crc32(t + p) & 0xFFFFFFFF)


def insert_png_chunks(png, chunks):
    """Inserts (type, payload) chunks right after IHDR."""
    pos = 8 + 12 + 13
    return png[:pos] + b"".join(png_chunk(t, p) for t, p in chunks) + png[pos:]


def make_image(img, fmt, icc=None, exif=None, xmp=None, dpi=None, texts=(), **kw):
    """Encoded bytes of PIL image `img` with the given metadata."""
    from PIL import PngImagePlugin
    b = io.BytesIO()
    args = dict(kw)
    if icc:
        args["icc_profile"] = icc
    if exif:
        args["exif"] = exif
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        for kind, k, v in texts:
            if kind == "tEXt":
                info.add_text(k, v)
            elif kind == "zTXt":
                info.add_text(k, v, zip=True)
            else:
                info.add_itxt(k, v)
        if xmp:
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        if dpi:
            args["dpi"] = dpi
        img.save(b, "PNG", pnginfo=info, **args)
        return b.getvalue()
    if fmt == "jpeg":
        if dpi:
            args["dpi"] = dpi
        img.save(b, "JPEG", **args)
        data = b.getvalue()
        if xmp:
            data = insert_jpeg_segments(data, [(0xE1, XMP_SIG + xmp)])
        return data
    if xmp:
        args["xmp"] = xmp
    img.save(b, "WEBP", **args)
    return b.getvalue()
