"""What every layer of Switchyard uses and that uses none of them: logging set-up."""
