// The upload's error class, apart from upload.ts so that the main entry can export it while the
// upload code itself loads only when a page first uploads.

/** Why an upload failed: a server error code (docs/protocol.md) or `connection_lost`, `checksum_mismatch`. */
export class UploadError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'UploadError';
  }
}
