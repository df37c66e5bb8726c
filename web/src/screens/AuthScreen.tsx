import { useState, type FormEvent } from 'react';

import { api, type Session } from '../api';
import { describeError } from '../errors';
import { linkHandler } from '../router';

type Props = { mode: 'login' | 'register'; expired: boolean; onSignedIn: (session: Session) => void };

function useSubmit(onSignedIn: (session: Session) => void) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (action: () => Promise<Session>) => {
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await action());
    } catch (caught) {
      setError(describeError(caught));
      setBusy(false);
    }
  };
  return { busy, error, run };
}

export function AuthScreen({ mode, expired, onSignedIn }: Props) {
  const account = useSubmit(onSignedIn);
  const guest = useSubmit(onSignedIn);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [guestName, setGuestName] = useState('');
  const search = window.location.search;

  const submitAccount = (event: FormEvent) => {
    event.preventDefault();
    void account.run(() =>
      mode === 'login' ? api.login(email.trim(), password) : api.register(email.trim(), password, displayName.trim()),
    );
  };
  const submitGuest = (event: FormEvent) => {
    event.preventDefault();
    void guest.run(() => api.guest(guestName.trim()));
  };

  return (
    <main className="auth-page">
      <div className="auth-intro">
        <h1>
          <img src="/favicon.svg" alt="" width={40} height={40} /> Switchyard
        </h1>
        <p>Video rooms for your team. Sign in, pick a room, and talk.</p>
      </div>
      {expired && (
        <p className="notice" role="status">
          Your session has expired. Please sign in again.
        </p>
      )}
      <div className="auth-cards">
        <section className="card" aria-labelledby="account-title">
          <h2 id="account-title">{mode === 'login' ? 'Sign in' : 'Create an account'}</h2>
          <form onSubmit={submitAccount} className="form">
            {mode === 'register' && (
              <label>
                Display name
                <input
                  name="displayName"
                  value={displayName}
                  onChange={(e) => setDisplayName(e.target.value)}
                  required
                  maxLength={64}
                  autoComplete="nickname"
                />
              </label>
            )}
            <label>
              Email
              <input
                name="email"
                type="email"
                value={email}
                onChange={(e) => setEmail(e.target.value)}
                required
                autoComplete="email"
              />
            </label>
            <label>
              Password
              <input
                name="password"
                type="password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                required
                minLength={mode === 'register' ? 8 : undefined}
                autoComplete={mode === 'login' ? 'current-password' : 'new-password'}
              />
              {mode === 'register' && <span className="hint">At least 8 characters.</span>}
            </label>
            {account.error && (
              <p className="form-error" role="alert">
                {account.error}
              </p>
            )}
            <button className="button primary" type="submit" disabled={account.busy}>
              {mode === 'login' ? 'Sign in' : 'Create account'}
            </button>
          </form>
          <p className="switch-mode">
            {mode === 'login' ? (
              <>
                New here?{' '}
                <a href={`/register${search}`} onClick={linkHandler(`/register${search}`)}>
                  Create an account
                </a>
              </>
            ) : (
              <>
                Have an account?{' '}
                <a href={`/login${search}`} onClick={linkHandler(`/login${search}`)}>
                  Sign in
                </a>
              </>
            )}
          </p>
        </section>
        <section className="card" aria-labelledby="guest-title">
          <h2 id="guest-title">Continue as a guest</h2>
          <form onSubmit={submitGuest} className="form">
            <label>
              Your name
              <input
                name="guestName"
                value={guestName}
                onChange={(e) => setGuestName(e.target.value)}
                required
                maxLength={64}
                autoComplete="nickname"
              />
            </label>
            {guest.error && (
              <p className="form-error" role="alert">
                {guest.error}
              </p>
            )}
            <button className="button" type="submit" disabled={guest.busy}>
              Continue as guest
            </button>
          </form>
        </section>
      </div>
    </main>
  );
}
