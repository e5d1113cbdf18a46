// Photos in the browser: reading a dropped/picked/pasted file into a bitmap,
// knowing its format, and saving a result under the original name and format.

import { canvasBlob, makeCanvas } from './mask.js';
import { jpegQuality } from './jpegquality.js';

// The page's one table of formats: the server's format names (GET
// /api/v1/models "formats") -> media type, and media type -> file extension.
const TYPES = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp' };
const EXT = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp' };

// The extension files of this media type get ('png', 'jpg', 'webp'), or undefined.
export function extOf(type) {
  return EXT[type];
}

// Format of the bytes from their magic: 'image/png' | 'image/jpeg' | 'image/webp' | ''.
export async function sniffType(blob) {
  const b = new Uint8Array(await blob.slice(0, 12).arrayBuffer());
  if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return TYPES.png;
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return TYPES.jpeg;
  if (b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 &&
      b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) return TYPES.webp;
  return '';
}

// A photo: {blob (the bytes to upload), name, type, bitmap, width, height}.
// Throws an Error whose message says what is wrong with the file.
export async function loadPhoto(blob, name) {
  if (!blob || blob.size === 0) throw new Error('The file is empty.');
  const type = await sniffType(blob);
  if (!type) {
    throw new Error(`${name || 'This file'} is not a PNG, JPEG or WebP picture; open one of those.`);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch {
    throw new Error(`The browser could not decode ${name || 'this picture'}; the file may be damaged.`);
  }
  if (!name) name = `pasted.${EXT[type]}`;
  const typed = blob.type === type ? blob : new Blob([blob], { type });
  // A JPEG's own quality (0..1), for when the page has to encode its result.
  const q = type === TYPES.jpeg ? jpegQuality(new Uint8Array(await blob.slice(0, 262144).arrayBuffer())) : null;
  return { blob: typed, name, type, bitmap, width: bitmap.width, height: bitmap.height, quality: q ? q / 100 : null };
}

// A job's result bytes, typed by their magic, and their bitmap: {blob, bitmap}.
export async function decodeResult(blob) {
  const type = await sniffType(blob);
  const typed = type && blob.type !== type ? new Blob([blob], { type }) : blob;
  return { blob: typed, bitmap: await createImageBitmap(typed) };
}

// First image file in a DataTransfer (drop or paste), or null.
export function imageFromTransfer(dt) {
  if (!dt) return null;
  for (const f of dt.files || []) if (/^image\//.test(f.type) || /\.(png|jpe?g|webp)$/i.test(f.name)) return f;
  for (const it of dt.items || []) {
    if (it.kind === 'file' && /^image\//.test(it.type)) return it.getAsFile();
  }
  return null;
}

// `name` with the extension of `type` (png when unknown) in place of its own.
export function withExt(name, type) {
  const base = name.replace(/\.[^./\\]+$/, '');
  return `${base}.${EXT[type] || 'png'}`;
}

// Bytes for downloading `current` (bitmap + blob) in `type`. Re-encodes in the
// browser only when the bytes are in another format, at `quality` (0..1; the
// photo's own for a JPEG, else 0.95). Returns {blob, name, note}.
export async function bytesFor(current, name, type, quality = null) {
  if (current.blob && current.blob.type === type) return { blob: current.blob, name, note: '' };
  const c = makeCanvas(current.width, current.height);
  c.getContext('2d').drawImage(current.bitmap, 0, 0);
  const blob = await canvasBlob(c, type, quality || 0.95);
  if (blob.type === type) return { blob, name, note: '' };
  return {
    blob,
    name: withExt(name, blob.type),
    note: `This browser cannot write ${EXT[type].toUpperCase()}; saved as ${EXT[blob.type] ? EXT[blob.type].toUpperCase() : 'PNG'} instead.`,
  };
}

export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function formatOf(type) {
  return EXT[type] === 'jpg' ? 'jpeg' : EXT[type] || 'png';
}
