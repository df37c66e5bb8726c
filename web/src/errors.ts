// Server error codes (PROTOCOL.md §2-§4) as sentences a person can act on.

const MESSAGES: Record<string, string> = {
  invalid_credentials: 'That email and password do not match an account.',
  email_taken: 'An account with this email already exists. Sign in instead.',
  unauthorized: 'Your session has expired. Please sign in again.',
  forbidden: 'You are not allowed to do that.',
  not_found: 'That room does not exist (or was deleted).',
  room_full: 'This room is full. Try again when someone leaves.',
  limit_exceeded: 'Too many attempts. Wait a moment and try again.',
  cannot_consume: 'Your browser cannot play a participant’s media.',
  network_error: 'The server cannot be reached. Check your connection.',
  connect_error: 'The server cannot be reached. Check your connection.',
  timeout: 'The server did not answer in time.',
  internal_error: 'Something went wrong on the server. Please try again.',
  unsupported: 'The server does not support that.',
  payload_too_large: 'That is too long.',
};

/** The message to show for an error with a contract code; `invalid_input` keeps the server's text. */
export function humanMessage(code: string | undefined, serverMessage?: string): string {
  if (code === 'invalid_input' && serverMessage) return `Please check the form: ${serverMessage}.`;
  if (code && MESSAGES[code]) return MESSAGES[code];
  return serverMessage ? `Something went wrong: ${serverMessage}` : 'Something went wrong. Please try again.';
}

/** Any thrown value (ApiError, SignalingError, DOMException, Error) as a message for people. */
export function describeError(error: unknown): string {
  if (error && typeof error === 'object') {
    const { code, message, name } = error as { code?: unknown; message?: unknown; name?: unknown };
    if (typeof code === 'string') return humanMessage(code, typeof message === 'string' ? message : undefined);
    if (name === 'NotAllowedError') return 'Camera and microphone access was refused. Allow it in the browser to be seen and heard.';
    if (name === 'NotFoundError') return 'No camera or microphone was found.';
    if (name === 'NotReadableError') return 'The camera or microphone is in use by another program.';
    if (typeof message === 'string' && message) return humanMessage(undefined, message);
  }
  return humanMessage(undefined);
}
