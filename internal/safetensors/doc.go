// Package safetensors is a pure-Go codec for the safetensors file format
// (https://github.com/huggingface/safetensors).
//
// A safetensors file is laid out as:
//
//	8 bytes   little-endian uint64 N, the header length
//	N bytes   UTF-8 JSON header, padded with trailing spaces
//	rest      the byte buffer holding every tensor's data
//
// The header is a JSON object mapping each tensor name to
// {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}, with offsets
// relative to the start of the byte buffer, plus an optional "__metadata__"
// object mapping strings to strings.
//
// Encode and WriteFile produce files byte-compatible with the reference
// writer's layout (8-byte aligned buffer, contiguous data, deterministic
// order). Decode and ReadFile validate a file strictly and report which
// tensor and which rule a malformed file violates.
//
// Open validates a file's header the same way without reading its data, and
// memory-maps the byte buffer read-only, so that large checkpoints load
// lazily and without copies. OpenSharded opens a checkpoint sharded in the
// Hugging Face layout (model.safetensors.index.json plus the shard files it
// names) and WriteSharded writes one. File and Sharded both implement
// Reader; OpenAny opens either kind from a file or directory path.
package safetensors
