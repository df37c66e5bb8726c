import { describe, expect, it } from 'vitest';

import { describeError, humanMessage } from './errors';

describe('humanMessage', () => {
  it('turns contract codes into sentences', () => {
    expect(humanMessage('room_full')).toMatch(/full/);
    expect(humanMessage('invalid_credentials')).toMatch(/email and password/);
    expect(humanMessage('unauthorized')).toMatch(/sign in again/);
  });

  it('keeps the server text for invalid input, which names the field', () => {
    expect(humanMessage('invalid_input', 'password: too short')).toBe('Please check the form: password: too short.');
  });

  it('falls back to the server text for unknown codes', () => {
    expect(humanMessage('brand_new_code', 'the flux capacitor is off')).toMatch(/flux capacitor/);
    expect(humanMessage(undefined)).toMatch(/Something went wrong/);
  });
});

describe('describeError', () => {
  it('reads codes from API and signaling errors', () => {
    expect(describeError({ code: 'email_taken', message: 'x' })).toMatch(/already exists/);
  });

  it('explains refused or missing devices', () => {
    expect(describeError({ name: 'NotAllowedError', message: 'Permission denied' })).toMatch(/refused/);
    expect(describeError({ name: 'NotFoundError', message: '' })).toMatch(/No camera/);
  });

  it('never returns an empty message', () => {
    expect(describeError(null)).toMatch(/Something went wrong/);
    expect(describeError(42)).toMatch(/Something went wrong/);
  });
});
