import type { User } from '../api';
import { linkHandler } from '../router';

export function Header({ user, onSignOut, children }: { user: User; onSignOut?: () => void; children?: React.ReactNode }) {
  return (
    <header className="app-header">
      <a className="brand" href="/rooms" onClick={linkHandler('/rooms')}>
        <img src="/favicon.svg" alt="" width={24} height={24} /> Switchyard
      </a>
      <div className="header-middle">{children}</div>
      <div className="header-user">
        <span>
          <span className="visually-hidden">Signed in as </span>
          {user.displayName}
          {user.isGuest ? ' (guest)' : ''}
        </span>
        {onSignOut && (
          <button type="button" className="button ghost" onClick={onSignOut}>
            Sign out
          </button>
        )}
      </div>
    </header>
  );
}
