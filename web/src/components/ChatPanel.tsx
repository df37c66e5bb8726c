import { useEffect, useRef, useState, type FormEvent } from 'react';

import type { ChatMessage } from '../api';
import { Icon } from './icons';

type Props = {
  messages: ChatMessage[];
  selfUserId: string;
  onSend: (text: string) => Promise<boolean>;
  onClose: () => void;
};

function time(ts: string): string {
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function ChatPanel({ messages, selfUserId, onSend, onClose }: Props) {
  const [text, setText] = useState('');
  const [sending, setSending] = useState(false);
  const listRef = useRef<HTMLOListElement>(null);
  const inputRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    inputRef.current?.focus();
  }, []);

  useEffect(() => {
    const list = listRef.current;
    if (list) list.scrollTop = list.scrollHeight;
  }, [messages.length]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const body = text.trim();
    if (!body || sending) return;
    setSending(true);
    if (await onSend(body)) setText('');
    setSending(false);
    inputRef.current?.focus();
  };

  return (
    <aside className="chat-panel" aria-labelledby="chat-title">
      <div className="chat-head">
        <h2 id="chat-title">Chat</h2>
        <button type="button" className="icon-button" onClick={onClose} aria-label="Close chat">
          <Icon name="close" />
        </button>
      </div>
      <ol className="chat-messages" ref={listRef} aria-live="polite" aria-label="Messages">
        {messages.length === 0 && <li className="empty">No messages yet.</li>}
        {messages.map((message) => (
          <li key={message.id} className={message.userId === selfUserId ? 'chat-message own' : 'chat-message'}>
            <div className="chat-meta">
              <span className="chat-author">{message.displayName}</span>
              <time dateTime={message.ts}>{time(message.ts)}</time>
            </div>
            <p className="chat-text">{message.text}</p>
          </li>
        ))}
      </ol>
      <form className="chat-form" onSubmit={submit}>
        <label htmlFor="chat-input" className="visually-hidden">
          Message
        </label>
        <input
          id="chat-input"
          ref={inputRef}
          value={text}
          onChange={(e) => setText(e.target.value)}
          maxLength={2000}
          placeholder="Write a message"
          autoComplete="off"
        />
        <button type="submit" className="icon-button primary" disabled={sending || !text.trim()} aria-label="Send message">
          <Icon name="send" />
        </button>
      </form>
    </aside>
  );
}
